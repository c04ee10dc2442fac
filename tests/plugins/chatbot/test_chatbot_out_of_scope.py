"""Out-of-scope detection: the scores, their calibration, routing, `suite chatbot evaluate`, data checks."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from plugins.chatbot.data import labeled_csv, load_labeled_texts, load_lines
from plugins.chatbot.engine import Chatbot
from plugins.chatbot.guard import check_message
from plugins.chatbot.model import softmax
from plugins.chatbot.ood import (
    METHODS,
    OUTLIER_WEIGHTS,
    FeatureBank,
    HeldOut,
    OutOfScopeDetector,
    auroc,
    fit_detector,
    score,
)
from plugins.chatbot.options import SAMPLE_DIR
from plugins.chatbot.training import _split_out_of_scope, feature_bank, keep_weight
from services.training import LabeledText
from suite.cli import build_app
from suite.errors import ConfigError, DataError

runner = CliRunner()


def clusters(seed: int = 0, per_class: int = 30, classes: int = 3, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Well separated classes around the first ``classes`` axes."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    features = np.eye(dim)[labels] * 5 + rng.normal(0, 0.3, (len(labels), dim))
    return features, labels


def logits_of(features: np.ndarray, classes: int = 3) -> np.ndarray:
    return features[:, :classes] * 2  # a linear head that agrees with the clusters


# -- the scores ------------------------------------------------------------------------------
def test_feature_scores_rank_far_messages_above_near_ones():
    features, labels = clusters()
    bank = FeatureBank.fit(features, labels, 3)
    near, _ = clusters(seed=1, per_class=5)
    far = np.random.default_rng(2).normal(0, 0.3, (15, 8)) + np.eye(8)[5] * 5  # an axis no class uses
    for method in ("knn", "mahalanobis"):
        values = score(method, bank, np.vstack([near, far]), logits_of(np.vstack([near, far])))
        assert auroc(values[:15], values[15:]) == 1.0, method


def test_an_intent_without_examples_is_no_mean_to_be_near():
    features, labels = clusters()
    with_empty_class = FeatureBank.fit(features, labels, 4)  # class 3: e.g. a trained out-of-scope class
    near_origin = np.random.default_rng(6).normal(0, 0.3, (5, 8))
    np.testing.assert_allclose(
        score("mahalanobis", with_empty_class, near_origin, np.zeros((5, 4))),
        score("mahalanobis", FeatureBank.fit(features, labels, 3), near_origin, np.zeros((5, 3))),
        rtol=1e-4,
    )


def test_logit_scores_need_no_bank_and_follow_the_logits():
    logits = np.array([[9.0, 0.0, 0.0], [1.0, 0.9, 0.8]])
    for method in ("max_logit", "energy", "msp"):
        confident, unsure = score(method, None, np.zeros((2, 4)), logits)
        assert confident < unsure, method
    with pytest.raises(ValueError, match="needs the training examples"):
        score("knn", None, np.zeros((1, 4)), logits[:1])


def test_auroc_counts_ties_half():
    assert auroc(np.array([0.0, 1.0]), np.array([1.0, 2.0])) == pytest.approx(0.875)
    assert auroc(np.array([1.0]), np.array([])) is None


def test_threshold_turns_away_the_configured_share_of_in_scope_messages(tmp_path):
    features, labels = clusters()
    bank = FeatureBank.fit(features, labels, 3)
    held, held_labels = clusters(seed=3, per_class=40)
    detector = fit_detector(bank, HeldOut(held, logits_of(held), held_labels), method="auto", false_rejection_rate=0.05)
    assert detector.method == "knn" and set(detector.thresholds) == set(METHODS) - {"outlier_class", "knn_examples"}
    assert detector.details["false_rejection_rate"] == pytest.approx(0.05, abs=0.01)
    assert "auroc" not in detector.details  # no out-of-scope example to measure it on
    detector.save(tmp_path)
    assert not any(path.suffix == ".pkl" for path in tmp_path.iterdir())
    loaded = OutOfScopeDetector.load(tmp_path)
    assert loaded.thresholds == pytest.approx(detector.thresholds)
    np.testing.assert_allclose(loaded.scores(held, logits_of(held)), detector.scores(held, logits_of(held)))
    assert loaded.using("energy").threshold == detector.thresholds["energy"]


def test_a_synthetic_outlier_class_is_a_score_of_its_own_and_never_an_intent(tmp_path):
    features, labels = clusters()
    with_class = np.hstack([logits_of(features), np.full((len(features), 1), 1.0)])  # column 3: the outlier class
    bank = FeatureBank.fit(features, labels, 4)
    for method in ("knn", "mahalanobis", "max_logit", "energy", "msp"):  # the intents alone compete
        np.testing.assert_allclose(
            score(method, bank, features, with_class, outlier=3),
            score(method, FeatureBank.fit(features, labels, 3), features, logits_of(features)),
            rtol=1e-4,
        )
    probabilities = softmax(with_class)
    np.testing.assert_allclose(score("outlier_class", bank, features, with_class, outlier=3), probabilities[:, 3])
    with pytest.raises(ValueError, match="synthetic outliers"):
        score("outlier_class", bank, features, with_class)

    held, held_labels = clusters(seed=3, per_class=40)
    far = np.random.default_rng(2).normal(0, 0.3, (20, 8)) + np.eye(8)[5] * 5
    logits = np.hstack([logits_of(np.vstack([held, far])), np.r_[np.zeros(len(held)), np.full(20, 30.0)][:, None]])
    truth = np.r_[held_labels, np.full(20, -1)]
    detector = fit_detector(
        bank, HeldOut(np.vstack([held, far]), logits, truth), method="auto", false_rejection_rate=0.05, outlier=3
    )
    assert set(detector.thresholds) == set(METHODS) - {"knn_examples"}
    assert detector.details["auroc"]["outlier_class"] == 1.0
    detector.save(tmp_path)
    assert OutOfScopeDetector.load(tmp_path).outlier == 3
    without_class = HeldOut(held, logits_of(held), held_labels)
    with pytest.raises(ConfigError, match="'outlier_class' does not apply"):
        fit_detector(bank, without_class, method="outlier_class", false_rejection_rate=0.05)


def test_out_of_scope_examples_choose_the_score_with_the_best_auroc():
    features, labels = clusters()
    bank = FeatureBank.fit(features, labels, 3)
    held, held_labels = clusters(seed=4, per_class=20)
    # Out of scope but confident: far along a class axis, where logits look sure and vectors do not.
    far = np.eye(8)[0] * 5 + np.eye(8)[6] * 6 + np.random.default_rng(5).normal(0, 0.3, (20, 8))
    data = HeldOut(np.vstack([held, far]), logits_of(np.vstack([held, far])), np.r_[held_labels, -np.ones(20, int)])
    detector = fit_detector(bank, data, method="auto", false_rejection_rate=0.05)
    assert detector.method in ("knn", "mahalanobis") and detector.details["auroc"][detector.method] > 0.95
    assert detector.details["auroc"]["max_logit"] < detector.details["auroc"][detector.method]
    assert detector.details["out_of_scope_caught"] > 0.9


def test_out_of_scope_examples_are_neighbours_too_each_scored_without_itself(tmp_path):
    features, labels = clusters()
    # Out of scope, yet about as near intent 0's examples as its own messages are: only their
    # nearness to each other gives them away.
    near_intent = np.eye(8)[0] * 5 + np.eye(8)[6] * 1.2
    examples = near_intent + np.random.default_rng(7).normal(0, 0.3, (20, 8))
    bank = FeatureBank.fit(features, labels, 3, outliers=examples)
    held, held_labels = clusters(seed=4, per_class=20)
    data = HeldOut(
        np.vstack([held, examples]),
        logits_of(np.vstack([held, examples])),
        np.r_[held_labels, -np.ones(20, int)],
        own_example=np.r_[-np.ones(len(held), int), np.arange(20)],
    )
    detector = fit_detector(bank, data, method="auto", false_rejection_rate=0.05)
    assert detector.method == "knn_examples" and set(detector.thresholds) == set(METHODS) - {"outlier_class"}
    aurocs = detector.details["auroc"]
    assert aurocs["knn_examples"] > 0.99 and max(a for m, a in aurocs.items() if m != "knn_examples") < 0.99

    # Without leaving itself out, an example would find itself at cosine 1.
    itself = score("knn_examples", bank, examples, logits_of(examples))
    without = score("knn_examples", bank, examples, logits_of(examples), own_example=np.arange(20))
    assert np.all(without < itself)
    np.testing.assert_allclose(itself - score("knn", bank, examples, logits_of(examples)), 1.0, atol=1e-5)

    detector.save(tmp_path)
    loaded = OutOfScopeDetector.load(tmp_path)
    np.testing.assert_allclose(loaded.bank.outliers, bank.outliers)
    new = near_intent + np.random.default_rng(8).normal(0, 0.3, (50, 8))
    caught = {m: np.mean(loaded.using(m).scores(new, logits_of(new)) > loaded.thresholds[m]) for m in aurocs}
    assert caught["knn_examples"] >= 0.9 and caught["knn_examples"] > max(caught["knn"], caught["mahalanobis"])
    with pytest.raises(ValueError, match="needs out-of-scope examples"):
        score("knn_examples", FeatureBank.fit(features, labels, 3), new, logits_of(new))


def test_the_examples_weight_is_the_one_that_catches_most_and_it_is_saved(tmp_path):
    features, labels = clusters()
    rng = np.random.default_rng(11)
    examples = np.eye(8)[0] * 5 + np.eye(8)[6] * 1.0 + rng.normal(0, 0.4, (20, 8))
    bank = FeatureBank.fit(features, labels, 3, outliers=examples)
    held, held_labels = clusters(seed=4, per_class=20)
    # In scope, yet leaning towards the examples: a heavy weight turns these away first.
    leaning = np.eye(8)[0] * 5 + np.eye(8)[6] * 0.8 + rng.normal(0, 0.3, (10, 8))
    messages = np.vstack([held, leaning, examples])
    truth = np.r_[held_labels, np.zeros(10, int), -np.ones(20, int)]
    own = np.r_[-np.ones(len(held) + 10, int), np.arange(20)]
    detector = fit_detector(
        bank, HeldOut(messages, logits_of(messages), truth, own), method="auto", false_rejection_rate=0.05
    )

    caught = {float(w): c for w, c in detector.details["knn_examples_caught_by_weight"].items()}
    assert set(caught) == set(OUTLIER_WEIGHTS)
    weight = detector.details["knn_examples_weight"]
    assert detector.bank.outlier_weight == weight and caught[weight] == max(caught.values())
    assert caught[weight] > caught[1.0], "in this geometry the unweighted sum catches fewer"
    assert detector.details["out_of_scope_caught"] == caught[weight]

    detector.save(tmp_path)
    loaded = OutOfScopeDetector.load(tmp_path).using("knn_examples")
    nearest_example = (messages / np.linalg.norm(messages, axis=1, keepdims=True)) @ loaded.bank.outliers.T
    np.testing.assert_allclose(
        loaded.scores(messages, logits_of(messages)),
        score("knn", bank, messages, logits_of(messages)) + weight * nearest_example.max(axis=1),
        atol=1e-5,
    )
    # A bank saved before the weight existed counts the examples at weight 1.
    arrays = dict(np.load(tmp_path / "ood.npz"))
    del arrays["outlier_weight"]
    np.savez(tmp_path / "ood.npz", **arrays)
    assert OutOfScopeDetector.load(tmp_path).bank.outlier_weight == 1.0


def test_a_refit_keeps_the_chosen_weight_and_trained_examples_are_neighbours_too(trained_ctx):
    classifier = Chatbot(trained_ctx).model().classifier
    options = trained_ctx.plugin_options("chatbot")
    intent = classifier.labels[0]
    rows = [LabeledText("I forgot my PIN", intent), LabeledText("tell me a joke", options.out_of_scope_label)]
    bank = feature_bank(classifier, rows, options, ["what is the weather on mars"])
    assert bank.outliers.shape == (2, 384) and bank.labels.tolist() == [0]
    features, _ = classifier.features_and_logits(["what is the weather on mars", "tell me a joke"])
    np.testing.assert_allclose(bank.outliers, features / np.linalg.norm(features, axis=1, keepdims=True), atol=1e-5)

    chosen = dataclasses.replace(bank, outlier_weight=0.5)
    assert keep_weight(chosen, bank).outlier_weight == 0.5 and keep_weight(chosen, bank).outliers is bank.outliers
    assert keep_weight(None, bank) is bank and keep_weight(chosen, None) is None


def test_too_few_held_out_messages_give_no_detector():
    features, labels = clusters(per_class=5)
    assert (
        fit_detector(None, HeldOut(features, logits_of(features), labels), method="auto", false_rejection_rate=0.05)
        is None
    )


# -- data checks -----------------------------------------------------------------------------
def test_common_out_of_scope_labels_never_train_an_intent(caplog):
    rows = [LabeledText("hi", "greet"), LabeledText("weather?", "oos"), LabeledText("poem", "None")]
    with caplog.at_level(logging.WARNING, logger="plugins.chatbot.training"):
        kept, outside = _split_out_of_scope(rows, "out_of_scope")
    assert [row.label for row in kept] == ["greet"] and outside == ["weather?", "poem"]
    assert "'oos'" in caplog.text and "'None'" in caplog.text


def test_a_csv_without_header_names_the_header_it_needs(tmp_path):
    path = tmp_path / "intents.csv"
    path.write_text("my card is lost,lost_card\nwhere is my money,transfer\n", encoding="utf-8")
    with pytest.raises(DataError, match="no header line; the first line must be 'text,label'"):
        load_labeled_texts(path)


@pytest.mark.parametrize("message", ["las vegas weather today", "who plays han solo", "stop, just stop", "hola"])
def test_plain_english_the_old_guard_refused_passes(message):
    assert check_message(message, max_chars=1000).ok


# -- the trained sample bot ------------------------------------------------------------------
def test_features_and_logits_match_the_classifier_probabilities(trained_ctx):
    model = Chatbot(trained_ctx).model()
    texts = ["I forgot my PIN", "what is the weather on mars", "send 20 pounds to my sister"]
    features, logits = model.classifier.features_and_logits(texts)
    assert features.shape == (3, 384) and logits.shape == (3, len(model.labels))
    np.testing.assert_allclose(softmax(logits), model.classifier.predict_proba(texts), atol=2e-3)


def test_training_saves_the_detector_and_reports_it_in_the_card(trained_ctx):
    version = trained_ctx.registry.active("chatbot", "intent")
    assert (version.path / "ood.json").is_file() and (version.path / "ood.npz").is_file()
    metrics = version.card.metrics
    assert metrics["out_of_scope_method"] in METHODS and "out of scope:" in version.card.notes
    saved = json.loads((version.path / "ood.json").read_text())
    assert saved["details"]["false_rejection_rate_target"] == 0.05
    assert "auroc" in saved["details"], "the sample's out-of-scope messages measure every score"
    assert "knn_examples" in saved["details"]["auroc"] and "knn_examples" in saved["thresholds"]
    assert metrics["out_of_scope_examples_weight"] == saved["details"]["knn_examples_weight"] in OUTLIER_WEIGHTS
    examples = load_lines(SAMPLE_DIR / "out_of_scope.txt")
    assert OutOfScopeDetector.load(version.path).bank.outliers.shape == (len(examples), 384)


def test_out_of_scope_messages_get_the_polite_answer_or_a_person(trained_ctx):
    message = "can you write me a poem about the sea"
    answer = Chatbot(trained_ctx).answer(message)
    assert answer.source == "out_of_scope" and answer.out_of_scope_reason
    assert answer.answer.startswith("Sorry, that is not something I can help with")
    options = Chatbot(trained_ctx).options.model_copy(update={"out_of_scope_action": "handoff"})
    assert Chatbot(trained_ctx, options).answer(message).source == "handoff"
    configured = options.model_copy(update={"out_of_scope_action": "answer", "out_of_scope_reply": "Not here."})
    assert Chatbot(trained_ctx, configured).answer(message).answer == "Not here."


def test_evaluate_prints_accuracy_routing_and_auroc(trained_ctx, tmp_path):
    rows = load_labeled_texts(SAMPLE_DIR / "intents.csv")[::8]
    outside = load_lines(SAMPLE_DIR / "out_of_scope.txt")[:6]
    path = tmp_path / "eval.csv"
    path.write_text(labeled_csv([*((r.text, r.label) for r in rows), *((t, "oos") for t in outside)]), encoding="utf-8")
    shown = runner.invoke(build_app(trained_ctx), ["chatbot", "evaluate", str(path)], catch_exceptions=False)
    assert shown.exit_code == 0 and "accuracy" in shown.output and "out-of-scope AUROC" in shown.output
    assert "right intent" in shown.output and "out of scope (6)" in shown.output
    result = runner.invoke(build_app(trained_ctx), ["chatbot", "evaluate", str(path), "--oos-label", "oos", "--json"])
    report = json.loads(result.output)
    assert report["in_scope"] == len(rows) and report["out_of_scope"] == len(outside)
    assert 0.5 < report["accuracy"] <= 1 and 0.5 < report["auroc"] <= 1
    assert sum(report["routes"]["in_scope"].values()) == len(rows)
    assert report["out_of_scope_caught"] >= 0.5


def test_train_names_the_intents_without_a_template(trained_ctx, tmp_path):
    from plugins.chatbot.cli import warn_missing_templates

    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps({"intents": {"change_pin": {"title": "change your PIN", "template": "Do X."}}}))
    bot = Chatbot(trained_ctx, Chatbot(trained_ctx).options.model_copy(update={"templates": str(templates)}))
    console = Console(record=True, width=200)
    warn_missing_templates(bot, bot.model().labels, console)
    text = console.export_text()
    assert f"{len(bot.model().labels) - 1} of {len(bot.model().labels)} intents have no template" in text
    assert "lost_or_stolen_card" in text and "change_pin" not in text.split(":", 2)[-1]


@pytest.mark.slow
def test_synthetic_outliers_train_an_out_of_scope_class_without_examples(context_factory):
    from plugins.chatbot.cli import warn_missing_templates
    from plugins.chatbot.training import train_from_files

    small = {"epochs": 6, "batch_size": 16, "max_length": 32, "refit": "never"}
    ctx = context_factory({**small, "synthetic_outliers": 1.0})
    version = train_from_files(ctx, {"progress": False})
    assert "out_of_scope" in version.card.labels and version.card.hyperparameters["outlier_weight"] == 1.0
    assert version.card.metrics["out_of_scope_trained"] == 0
    bot = Chatbot(ctx)
    detector = bot.model().detector
    assert detector.outlier == version.card.labels.index("out_of_scope") and "outlier_class" in detector.thresholds
    console = Console(record=True, width=200)
    warn_missing_templates(bot, version.card.labels, console)
    assert "out_of_scope" not in console.export_text()
    answers = [bot.answer(row.text) for row in load_labeled_texts(SAMPLE_DIR / "intents.csv")[::6]]
    assert all(answer.intent != "out_of_scope" for answer in answers)  # the class is a score, not an intent
    assert "out_of_scope" not in bot.intent_labels()
    assert sum(answer.source == "template" for answer in answers) >= len(answers) / 2


@pytest.mark.slow
def test_a_refit_out_of_scope_class_keeps_every_example_as_a_neighbour_and_the_chosen_weight(context_factory):
    from plugins.chatbot.training import train_from_files

    small = {"epochs": 1, "batch_size": 16, "max_length": 32, "refit": "always", "out_of_scope_class": True}
    version = train_from_files(context_factory(small), {"progress": False})
    assert "refit_steps" in version.card.metrics and version.card.metrics["out_of_scope_trained"] > 0
    detector = OutOfScopeDetector.load(version.path)
    examples = load_lines(SAMPLE_DIR / "out_of_scope.txt")
    assert detector.bank.outliers.shape == (len(examples), 384), "held-out and trained examples, refit vectors"
    assert detector.bank.outlier_weight == detector.details["knn_examples_weight"]
