"""Synthetic outliers: an out-of-scope class trained on mixtures of two labels' features, no example needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_samples import QUICK

from services.training import TextClassifier
from services.training.params import resolve_params
from services.training.tasks.classification import synthetic_outliers, with_outlier_label
from suite.config import TrainingConfig
from suite.errors import ConfigError


def test_outliers_lie_between_two_examples_of_different_labels() -> None:
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    targets = torch.tensor([0, 1, 1, 0])
    generator = torch.Generator().manual_seed(3)
    draws = [synthetic_outliers(features, targets, generator) for _ in range(20)]
    assert sum(mixed is not None for mixed in draws) >= 10  # a draw may pair every example with its own label
    for mixed in filter(lambda m: m is not None, draws):
        for point in mixed:
            # some pair (a, b) of different labels with point = s*a + (1-s)*b, 0.3 <= s <= 0.7
            found = False
            for a in range(4):
                for b in range(4):
                    if targets[a] == targets[b]:
                        continue
                    gap = features[a] - features[b]
                    share = float((point - features[b]) @ gap / (gap @ gap))
                    if 0.3 - 1e-6 <= share <= 0.7 + 1e-6 and torch.allclose(share * gap + features[b], point):
                        found = True
            assert found, point
    assert synthetic_outliers(features[:1].repeat(3, 1), torch.tensor([1, 1, 1]), generator) is None


def test_the_outlier_label_is_added_only_when_it_trains() -> None:
    config = TrainingConfig()
    assert with_outlier_label(["a", "b"], resolve_params(config, {})) == ["a", "b"]
    params = resolve_params(config, {"outlier_label": "oos", "outlier_weight": 1.0})
    assert with_outlier_label(["a", "b"], params) == ["a", "b", "oos"]
    with pytest.raises(ConfigError, match="needs outlier_label"):
        with_outlier_label(["a", "b"], resolve_params(config, {"outlier_weight": 1.0}))
    with pytest.raises(ConfigError, match="distillation"):
        with_outlier_label(["a", "b"], resolve_params(config, {**params.__dict__, "teacher": "folder"}))


@pytest.mark.slow
def test_a_classifier_learns_an_outlier_class_from_mixtures_alone(engine, backbone, intent_rows, tmp_path) -> None:
    params = dict(QUICK, max_steps=24, outlier_label="out_of_scope", outlier_weight=1.0)
    result = engine.train_classifier(backbone, intent_rows, None, params, output_dir=tmp_path / "m", progress=False)
    assert result.labels == ["greeting", "music", "out_of_scope", "weather"]
    assert result.params["outlier_weight"] == 1.0
    classifier = TextClassifier.from_pretrained(result.model_dir)
    texts = [row.text for row in intent_rows]
    features, logits = classifier.features_and_logits(texts)
    assert "out_of_scope" not in {p.label for p in classifier.predict(texts)}  # no example trained it
    labels = np.array([row.label for row in intent_rows])
    first, second = np.flatnonzero(labels == "greeting"), np.flatnonzero(labels == "weather")
    mixed = torch.tensor(0.5 * features[first[:5]] + 0.5 * features[second[:5]])
    with torch.no_grad():
        mixed_logits = classifier.model.classifier(mixed).numpy()
    outlier = classifier.labels.index("out_of_scope")

    def outlier_share(rows: np.ndarray) -> np.ndarray:
        rows = np.exp(rows - rows.max(axis=1, keepdims=True))
        return rows[:, outlier] / rows.sum(axis=1)

    assert outlier_share(mixed_logits).mean() > 0.5 > outlier_share(logits).max()
