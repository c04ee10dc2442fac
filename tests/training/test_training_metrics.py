"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from services.training import classification_metrics, confusion_matrix, retrieval_metrics


def test_confusion_matrix_counts_true_rows_predicted_columns():
    matrix = confusion_matrix([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_classification_metrics_match_hand_computation():
    metrics = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"])
    # precision a 1/2, b 2/3, c 1/1; recall a 1/2, b 1, c 1/2; f1 a 1/2, b 4/5, c 2/3
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert metrics["per_label"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert metrics["labels"] == ["a", "b", "c"] and metrics["examples"] == 6


def test_labels_absent_from_truth_and_predictions_do_not_count_in_macro_averages():
    metrics = classification_metrics([0, 1], [0, 1], ["a", "b", "never"])
    assert metrics["macro_f1"] == 1.0 and metrics["precision"] == 1.0
    # a label that is predicted but never true does count: precision 0 for it
    metrics = classification_metrics([0, 0], [0, 2], ["a", "b", "c"])
    assert metrics["precision"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["recall"] == pytest.approx((0.5 + 0.0) / 2)


def test_retrieval_metrics_hand_computed():
    candidates = np.eye(3, dtype=np.float32)
    queries = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0.2, 0.9]], dtype=np.float32)
    metrics = retrieval_metrics(queries, candidates, [0, 1, 2], ks=(1, 2))
    # ranks: 1, 2 (candidate 0 scores higher), 1
    assert metrics["recall@1"] == pytest.approx(2 / 3)
    assert metrics["recall@2"] == 1.0
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1) / 3)
