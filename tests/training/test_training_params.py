"""Hyper-parameters: None means the config default; the batches of every epoch are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from services.training import TrainingEngine, TrainParams
from services.training.batching import LengthGroupedBatches, length_sorted_chunks, pad_batch
from suite.config import TrainingConfig
from suite.errors import ConfigError


def test_unset_parameters_take_the_config_defaults():
    config = TrainingConfig(learning_rate=3e-4, epochs=2.5, early_stopping_patience=3, biencoder_learning_rate=1e-5)
    engine = TrainingEngine(config)
    resolved = engine.resolve_params(TrainParams(batch_size=4))
    assert resolved.batch_size == 4 and resolved.learning_rate == 3e-4 and resolved.epochs == 2.5
    assert resolved.early_stopping_patience == 3 and resolved.early_stopping_metric == "macro_f1"
    assert resolved.min_steps == config.min_steps and resolved.max_steps is None
    biencoder = engine.resolve_params({"early_stopping_patience": 0}, kind="biencoder")
    assert biencoder.learning_rate == 1e-5 and biencoder.early_stopping_metric == "mrr"
    assert biencoder.early_stopping_patience is None  # 0 turns early stopping off
    with pytest.raises(ConfigError, match="epochs"):
        engine.resolve_params({"epochs": -1})


def test_length_grouped_batches_cover_every_example_once_and_repeat_per_seed():
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    plan = LengthGroupedBatches(lengths, batch_size=16, seed=1)
    batches = plan.epoch(0)
    assert len(batches) == len(plan) == 63
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    # similar lengths share a batch: far less padding than random batches
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.15 * lengths.sum()
    assert all((a == b).all() for a, b in zip(batches, LengthGroupedBatches(lengths, 16, 1).epoch(0), strict=True))
    assert not all((a == b).all() for a, b in zip(batches, plan.epoch(1), strict=True))


def test_pad_batch_pads_to_the_longest_and_skips_the_mask_when_nothing_is_padded():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_batch([[5, 6], [7, 8]], pad_id=0)
    assert mask is None and ids.shape == (2, 2)


def test_inference_chunks_are_length_sorted_and_kept_under_a_token_budget():
    lengths = [30, 500, 10, 120, 480, 25, 510, 40, 2000]
    plain = length_sorted_chunks(lengths, 4)
    assert [len(chunk) for chunk in plain] == [4, 4, 1]
    budgeted = length_sorted_chunks(lengths, 4, max_tokens=1000)
    assert sorted(np.concatenate(budgeted).tolist()) == list(range(len(lengths)))  # every row once
    assert [[lengths[i] for i in chunk] for chunk in budgeted] == [[10, 25, 30, 40], [120, 480], [500], [510], [2000]]
    assert all(len(chunk) * max(lengths[i] for i in chunk) <= 1000 or len(chunk) == 1 for chunk in budgeted)


def test_batching_switches_default_from_config_and_turn_grouping_and_dynamic_padding_off():
    engine = TrainingEngine(TrainingConfig(padding="max_length"))
    resolved = engine.resolve_params({"group_by_length": False})
    assert resolved.group_by_length is False and resolved.padding == "max_length"
    assert TrainingEngine(TrainingConfig()).resolve_params(None).group_by_length is True
    with pytest.raises(ConfigError, match="padding"):
        engine.resolve_params({"padding": "shortest"})

    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    plain = LengthGroupedBatches(lengths, batch_size=16, seed=1, grouped=False).epoch(0)
    assert sorted(np.concatenate(plain).tolist()) == list(range(1000))
    grouped = LengthGroupedBatches(lengths, batch_size=16, seed=1).epoch(0)
    assert sum(len(b) * lengths[b].max() for b in plain) > 1.3 * sum(len(b) * lengths[b].max() for b in grouped)

    ids, mask = pad_batch([[5, 6], [7, 8]], pad_id=0, pad_to=4)
    assert ids.tolist() == [[5, 6, 0, 0], [7, 8, 0, 0]] and mask.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


def test_head_init_auto_imprints_only_few_shot_runs():
    from services.training.engine import starts_from_centroids

    assert TrainingEngine(TrainingConfig()).resolve_params(None).head_init == "auto"
    assert TrainingEngine(TrainingConfig(head_init="random")).resolve_params(None).head_init == "random"
    assert TrainingEngine(TrainingConfig()).resolve_params({"head_init": "centroids"}).head_init == "centroids"
    assert starts_from_centroids("auto", examples=770, labels=77)  # 10 per label
    assert not starts_from_centroids("auto", examples=10_000, labels=77)
    assert starts_from_centroids("centroids", examples=10_000, labels=77)
    assert not starts_from_centroids("random", examples=10, labels=5)
    with pytest.raises(ValueError, match="head_init"):
        TrainingConfig(head_init="zeros")


def test_an_overriding_block_wins_over_the_callers_params_for_its_engine_only():
    engine, other = TrainingEngine(TrainingConfig()), TrainingEngine(TrainingConfig())
    with engine.overriding({"teacher": "/models/teacher", "distill_alpha": 0.8, "epochs": 2}):
        resolved = engine.resolve_params({"epochs": 5, "batch_size": 4})
        assert resolved.teacher == "/models/teacher" and resolved.distill_alpha == 0.8
        assert resolved.epochs == 2 and resolved.batch_size == 4  # the block wins; the rest is the caller's
        assert other.resolve_params({"epochs": 5}).teacher is None
    assert engine.resolve_params({"epochs": 5}).epochs == 5 and engine.resolve_params(None).teacher is None
    masked = engine.resolve_params(None, kind="masked-lm")
    assert masked.early_stopping_metric == "masked_lm_loss" and masked.min_steps == 0
    with pytest.raises(ConfigError, match="not a masked-lm metric"):
        engine.resolve_params({"early_stopping_metric": "accuracy"}, kind="masked-lm")
