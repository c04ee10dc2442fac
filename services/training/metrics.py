"""Validation metrics: classification (accuracy, macro precision/recall/F1, per label, confusion
matrix) and retrieval (recall@k, MRR), in numpy so that no extra dependency is needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_labels: int) -> np.ndarray:
    """``matrix[i, j]`` counts examples of true label ``i`` predicted as ``j``."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} != {pred.shape[0]}")
    flat = np.bincount(true * n_labels + pred, minlength=n_labels * n_labels)
    return flat.reshape(n_labels, n_labels)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, a per-label report and the confusion matrix.

    Macro averages run over the labels that occur in ``y_true`` or ``y_pred`` (as
    scikit-learn does without ``labels=``): a label absent from a small validation set
    and never predicted neither helps nor hurts. A label with no predictions has
    precision 0, one with no examples recall 0.
    """
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    present = (support > 0) | (predicted > 0)
    total = matrix.sum()
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "examples": int(total),
        "per_label": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }


def retrieval_metrics(
    queries: np.ndarray, candidates: np.ndarray, targets: Sequence[int], ks: Sequence[int] = (1, 10)
) -> dict[str, float]:
    """recall@k and MRR of each query's target among all candidates.

    ``queries`` (n, d) and ``candidates`` (m, d) are L2-normalised; ``targets[i]`` is the
    row of ``candidates`` that answers query ``i``. Ties count against the target.
    """
    scores = np.asarray(queries, dtype=np.float32) @ np.asarray(candidates, dtype=np.float32).T
    target_index = np.asarray(targets, dtype=np.int64)
    target_scores = scores[np.arange(len(target_index)), target_index]
    # Rank 1 = best: one plus the candidates that score at least as high, other than the target.
    ranks = (scores >= target_scores[:, None]).sum(axis=1)
    metrics = {f"recall@{k}": float((ranks <= k).mean()) for k in ks}
    metrics["mrr"] = float((1.0 / ranks).mean())
    metrics["examples"] = len(target_index)
    return metrics
