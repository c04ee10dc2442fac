"""Training pairs and validation splits of the recommender's fine-tuning (no model needed)."""

from __future__ import annotations

from plugins.recommender.options import TrainingOptions
from plugins.recommender.training import build_pairs, validation_split


def histories_and_texts() -> tuple[dict[str, list[str]], dict[str, str]]:
    histories = {"heavy": [f"i{n}" for n in range(60)], "light": ["i0", "i1", "i2"], "single": ["i5"]}
    return histories, {f"i{n}": f"text {n}" for n in range(60)}


def test_pairs_come_from_every_user_and_a_heavy_user_is_capped():
    histories, texts = histories_and_texts()
    options = TrainingOptions(history_window=2, pairs_per_user=10)
    pairs = build_pairs(histories, texts, options)
    light = {("text 0", "text 1"), ("text 0", "text 2"), ("text 1", "text 2")}
    assert light <= {(p.query, p.positive) for p in pairs}  # a light user gives all its pairs
    assert len(pairs) == 10 + 3  # the heavy user is cut to pairs_per_user; one item makes no pair
    for pair in pairs:  # every pair joins an item with one of the two items just before it
        before, after = int(pair.query.split()[1]), int(pair.positive.split()[1])
        assert 1 <= after - before <= 2


def test_each_epoch_samples_afresh_and_max_pairs_caps_an_epoch():
    histories, texts = histories_and_texts()
    options = TrainingOptions(history_window=3, pairs_per_user=30, max_pairs=20)
    first, second = build_pairs(histories, texts, options, 0), build_pairs(histories, texts, options, 1)
    assert len(first) == len(second) == 20
    assert first != second and first == build_pairs(histories, texts, options, 0)


def test_validation_items_never_train_and_keep_history_order():
    histories = {f"u{n}": [f"i{(n + k) % 40}" for k in range(8)] for n in range(40)}
    split = validation_split(histories, TrainingOptions(validation_items=0.1))
    assert split is not None and split.candidates
    assert not any(set(items) & split.candidates for items in split.train.values())
    assert all(
        items == [i for i in histories[user] if i not in split.candidates] for user, items in split.train.items()
    )
    assert split.test and all(held <= split.candidates for held in split.test.values())


def test_mined_negatives_are_near_the_query_and_never_chosen_by_its_user():
    import numpy as np

    from plugins.recommender.training import mined_negatives, sample_pairs

    histories, texts = histories_and_texts()
    ids = sorted(texts, key=lambda item: int(item[1:]))
    # Items on a circle: an item's nearest ones are its neighbours by number.
    angles = np.array([int(item[1:]) for item in ids]) * 2 * np.pi / len(ids)
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    sampled = sample_pairs({"light": histories["light"]}, texts, TrainingOptions(history_window=2))
    negatives = mined_negatives(vectors, ids, sampled, histories, seed=0)
    assert len(negatives) == len(sampled) == 3
    for (user, query, _), negative in zip(sampled, negatives, strict=True):
        assert negative is not None and negative not in histories[user]
        gap = abs(int(negative[1:]) - int(query[1:]))
        assert min(gap, 60 - gap) <= 12  # among the query's nearest items, not anywhere on the circle
