"""Out-of-scope scores from what the fine-tuned classifier already computes, and their threshold.

A message none of the intents covers still gets a confident softmax: the scores here look
at where its pooled sentence vector (the classifier head's input) lies instead, or at the
raw logits. Every score is "higher = more out of scope":

* ``knn``: 1 - cosine of the vector and its nearest training example of the predicted intent;
* ``knn_examples``: with out-of-scope examples, that ``knn`` score plus a weight times the cosine
  of the vector and its nearest out-of-scope example: "messages like these are not ours", without
  training (the weight is chosen on the held-out messages, see ``OUTLIER_WEIGHTS``);
* ``mahalanobis``: smallest Mahalanobis distance to an intent's mean, with one covariance
  shared by all intents (Ledoit-Wolf shrunk, so 10 examples per intent suffice);
* ``max_logit``: minus the largest logit; ``energy``: minus the logits' log-sum-exp;
* ``msp``: minus the largest softmax probability (the baseline the others are measured against);
* ``outlier_class``: the probability of the class trained on synthetic outliers
  (``synthetic_outliers``), where the model has one.

No out-of-scope example is needed: the threshold is the score that turns away
``false_rejection_rate`` of held-out in-scope messages. Out-of-scope examples, when the
user has them, pick the score with the best AUROC (each example scored without itself).
Saved beside the model as ``ood.json`` (method, threshold, measurements) and ``ood.npz``
(arrays, loaded without pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from suite.errors import ConfigError

OOD_FILE = "ood.json"
OOD_ARRAYS = "ood.npz"
METHODS = ("knn", "knn_examples", "mahalanobis", "max_logit", "energy", "msp", "outlier_class")
MIN_CALIBRATION = 20  # fewer held-out in-scope messages cannot place a 5% threshold
# knn_examples: how much nearness to an out-of-scope example counts against nearness to the
# predicted intent. Chosen per model by the held-out out-of-scope messages caught at the target
# false-rejection rate. The grid brackets what one exploratory measurement found on BANKING77 dev
# data (all data, 10 intents held out, 100 examples): 0.5-0.75 caught 88-90% of 600 dev messages,
# 1.0 caught 86%, 0.25 caught 72%.
OUTLIER_WEIGHTS = (0.25, 0.5, 0.75, 1.0, 1.5)


def _normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def shrunk_covariance(centered: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf: the sample covariance pulled towards a scaled identity as far as the data needs."""
    n, d = centered.shape
    sample = centered.T @ centered / n
    mu = np.trace(sample) / d
    target_gap = np.sum((sample - mu * np.eye(d)) ** 2)
    spread = (np.sum(np.sum(centered**2, axis=1) ** 2) / n - np.sum(sample**2)) / n
    shrinkage = float(min(spread, target_gap) / target_gap) if target_gap > 0 else 1.0
    return shrinkage * mu * np.eye(d) + (1 - shrinkage) * sample


@dataclass
class FeatureBank:
    """The training examples' vectors (for ``knn``), per-intent means and precision (``mahalanobis``),
    and the out-of-scope examples' vectors, if any (``knn_examples``)."""

    vectors: np.ndarray  # (n, hidden), unit length
    labels: np.ndarray  # (n,) intent index of each vector
    means: np.ndarray  # (intents, hidden)
    precision: np.ndarray  # (hidden, hidden)
    outliers: np.ndarray | None = None  # (m, hidden), unit length
    outlier_weight: float = 1.0  # knn_examples: the weight of the cosine to the nearest outlier

    @classmethod
    def fit(
        cls, features: np.ndarray, labels: Sequence[int], n_labels: int, outliers: np.ndarray | None = None
    ) -> FeatureBank:
        features, labels = np.asarray(features, np.float64), np.asarray(labels, np.int64)
        means = np.zeros((n_labels, features.shape[1]))
        for label in np.unique(labels):
            means[label] = features[labels == label].mean(axis=0)
        covariance = shrunk_covariance(features - means[labels])
        return cls(
            vectors=_normalized(features),
            labels=labels.astype(np.int32),
            means=means.astype(np.float32),
            precision=np.linalg.pinv(covariance).astype(np.float32),
            outliers=_normalized(outliers) if outliers is not None and len(outliers) else None,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"vectors": self.vectors, "labels": self.labels, "means": self.means, "precision": self.precision}
        if self.outliers is None:
            return arrays
        return {**arrays, "outliers": self.outliers, "outlier_weight": np.asarray(self.outlier_weight, np.float32)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FeatureBank:
        """The bank ``arrays()`` saved (a bank saved before ``outlier_weight`` existed weighs 1)."""
        weight = arrays.pop("outlier_weight", None)
        return cls(**arrays, outlier_weight=1.0 if weight is None else float(weight))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def in_scope_logits(logits: np.ndarray, outlier: int | None) -> np.ndarray:
    """The logits with the synthetic-outlier class's column, if any, at minus infinity: the
    intents alone compete, and every column keeps its index."""
    if outlier is None:
        return logits
    masked = np.array(logits, dtype=np.float64)
    masked[:, outlier] = -np.inf
    return masked


def score(
    method: str,
    bank: FeatureBank | None,
    features: np.ndarray,
    logits: np.ndarray,
    outlier: int | None = None,
    own_example: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-scope scores of a batch (higher: more likely out of scope). ``outlier``: the column
    of the class trained on synthetic outliers; every other score reads the intents' logits only.
    ``own_example``: for each message, the index of its own vector among the bank's out-of-scope
    examples (-1: none), left out of ``knn_examples`` so that a calibration example is not its own neighbour."""
    logits = np.asarray(logits, np.float64)
    if method == "outlier_class":
        if outlier is None:
            raise ValueError("out-of-scope method 'outlier_class' needs a model trained with synthetic outliers")
        return softmax(logits)[:, outlier]
    logits = in_scope_logits(logits, outlier)
    if method == "msp":
        return -softmax(logits).max(axis=1)
    if method == "max_logit":
        return -logits.max(axis=1)
    if method == "energy":
        top = logits.max(axis=1)
        return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1)))
    if bank is None:
        raise ValueError(f"out-of-scope method '{method}' needs the training examples' features")
    if method == "knn":
        return _knn(bank, features, logits)
    if method == "knn_examples":
        if bank.outliers is None:
            raise ValueError("out-of-scope method 'knn_examples' needs out-of-scope examples")
        similarity = _normalized(features) @ bank.outliers.T  # (batch, m)
        if own_example is not None:
            rows = np.flatnonzero(own_example >= 0)
            similarity[rows, own_example[rows]] = -np.inf
        return _knn(bank, features, logits) + bank.outlier_weight * similarity.max(axis=1, initial=-1.0)
    if method == "mahalanobis":
        # (f - m) P (f - m) expanded, so no (batch, intents, hidden) array is made
        features = np.asarray(features, np.float32)
        means = bank.means[np.unique(bank.labels)]  # an intent without examples (the out-of-scope class) has none
        projected = features @ bank.precision
        means_term = np.sum((means @ bank.precision) * means, axis=1)
        distances = np.sum(projected * features, axis=1)[:, None] - 2 * projected @ means.T + means_term[None]
        return distances.min(axis=1)
    raise ValueError(f"unknown out-of-scope method '{method}' (choose {', '.join(METHODS)})")


def _knn(bank: FeatureBank, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
    similarity = _normalized(features) @ bank.vectors.T  # (batch, n)
    predicted = logits.argmax(axis=1)
    own = bank.labels[None, :] == predicted[:, None]
    best = np.where(own, similarity, -np.inf).max(axis=1)
    best = np.where(np.isfinite(best), best, similarity.max(axis=1))  # an intent without examples
    return 1.0 - best


def auroc(in_scope: np.ndarray, out_of_scope: np.ndarray) -> float | None:
    """Probability that an out-of-scope message scores above an in-scope one (ties count half)."""
    in_scope, out_of_scope = np.asarray(in_scope, float), np.asarray(out_of_scope, float)
    if not in_scope.size or not out_of_scope.size:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([in_scope, out_of_scope]))
    out_ranks = ranks[in_scope.size :].sum() - out_of_scope.size * (out_of_scope.size + 1) / 2
    return float(out_ranks / (in_scope.size * out_of_scope.size))


def threshold_at(in_scope_scores: np.ndarray, false_rejection_rate: float) -> float:
    """The score above which ``false_rejection_rate`` of in-scope messages lie."""
    return float(np.quantile(np.asarray(in_scope_scores, float), 1 - false_rejection_rate))


DEFAULT_METHOD = "knn"  # chosen on BANKING77 dev data (bench/results/chatbot.md) where no example says otherwise


@dataclass
class OutOfScopeDetector:
    """Scores and their thresholds: a message scoring above ``thresholds[method]`` is out of scope.

    Every method's threshold is calibrated and saved, so another method can be configured
    later (``[plugins.chatbot] out_of_scope_method``) without training again.
    """

    method: str
    thresholds: dict[str, float]
    bank: FeatureBank | None = None
    details: dict[str, Any] = field(default_factory=dict)
    outlier: int | None = None  # the logits' column of the class trained on synthetic outliers

    @property
    def threshold(self) -> float:
        return self.thresholds[self.method]

    def using(self, method: str | None) -> OutOfScopeDetector:
        """This detector with ``method`` (None: as saved)."""
        if method is None or method == self.method:
            return self
        if method not in self.thresholds:
            saved = ", ".join(self.thresholds)
            raise ConfigError(f"out_of_scope_method '{method}' was not calibrated with this model (saved: {saved})")
        return OutOfScopeDetector(method, self.thresholds, self.bank, self.details, self.outlier)

    def scores(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return score(self.method, self.bank, features, logits, self.outlier)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        meta = {"method": self.method, "thresholds": self.thresholds, "details": self.details, "outlier": self.outlier}
        (folder / OOD_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if self.bank is not None:
            np.savez(folder / OOD_ARRAYS, **self.bank.arrays())

    @classmethod
    def load(cls, folder: Path) -> OutOfScopeDetector | None:
        folder = Path(folder)
        if not (folder / OOD_FILE).is_file():
            return None
        meta = json.loads((folder / OOD_FILE).read_text(encoding="utf-8"))
        bank = None
        if (folder / OOD_ARRAYS).is_file():
            with np.load(folder / OOD_ARRAYS, allow_pickle=False) as data:
                bank = FeatureBank.from_arrays({name: data[name] for name in data.files})
        thresholds = {name: float(value) for name, value in meta["thresholds"].items()}
        return cls(meta["method"], thresholds, bank, meta.get("details", {}), meta.get("outlier"))


@dataclass
class HeldOut:
    """Features and logits of held-out messages: in scope (with their intent index) and out of scope."""

    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray  # intent index; -1 for out of scope
    own_example: np.ndarray | None = None  # index of the message among the bank's out-of-scope examples, or -1

    @property
    def in_scope(self) -> np.ndarray:
        return self.labels >= 0


def _applies(method: str, bank: FeatureBank | None, outlier: int | None) -> bool:
    """Whether ``method`` can score with this bank and model: what each one reads exists."""
    if method in ("knn", "mahalanobis"):
        return bank is not None
    if method == "knn_examples":
        return bank is not None and bank.outliers is not None
    if method == "outlier_class":
        return outlier is not None
    return True


def fit_detector(
    bank: FeatureBank | None,
    held_out: HeldOut,
    *,
    method: str,
    false_rejection_rate: float,
    outlier: int | None = None,
) -> OutOfScopeDetector | None:
    """Every method's threshold at ``false_rejection_rate`` of the held-out in-scope messages,
    and the method in use: ``method``, or with "auto" the best AUROC on held-out out-of-scope
    messages (``DEFAULT_METHOD`` without any). None when too few in-scope messages are held out."""
    inside = held_out.in_scope
    if inside.sum() < MIN_CALIBRATION:
        return None
    usable = [m for m in METHODS if _applies(m, bank, outlier)]
    weights: dict[float, float] = {}
    if "knn_examples" in usable and (~inside).any():
        bank, weights = choose_outlier_weight(bank, held_out, false_rejection_rate, outlier)
    all_scores = {m: score(m, bank, held_out.features, held_out.logits, outlier, held_out.own_example) for m in usable}
    aurocs = {m: auroc(s[inside], s[~inside]) for m, s in all_scores.items()}
    if method == "auto":
        measured = {m: a for m, a in aurocs.items() if a is not None}
        method = max(measured, key=measured.get) if measured else DEFAULT_METHOD
    if method not in all_scores:
        raise ConfigError(f"out_of_scope_method '{method}' does not apply to this model (usable: {', '.join(usable)})")
    thresholds = {m: threshold_at(s[inside], false_rejection_rate) for m, s in all_scores.items()}
    rejected = all_scores[method] > thresholds[method]
    details: dict[str, Any] = {
        "false_rejection_rate_target": false_rejection_rate,
        "in_scope_messages": int(inside.sum()),
        "out_of_scope_messages": int((~inside).sum()),
        "false_rejection_rate": round(float(rejected[inside].mean()), 4),
    }
    if (~inside).any():
        details["out_of_scope_caught"] = round(float(rejected[~inside].mean()), 4)
        details["auroc"] = {m: round(a, 4) for m, a in aurocs.items() if a is not None}
    if weights:
        details["knn_examples_weight"] = bank.outlier_weight
        details["knn_examples_caught_by_weight"] = {str(w): round(c, 4) for w, c in weights.items()}
    return OutOfScopeDetector(method, thresholds, bank, details, outlier)


def choose_outlier_weight(
    bank: FeatureBank, held_out: HeldOut, false_rejection_rate: float, outlier: int | None = None
) -> tuple[FeatureBank, dict[float, float]]:
    """The bank with the ``OUTLIER_WEIGHTS`` entry under which ``knn_examples`` catches the most
    held-out out-of-scope messages at ``false_rejection_rate`` (ties: the better AUROC), and what
    each weight caught."""
    inside = held_out.in_scope
    caught: dict[float, float] = {}
    ranking: dict[float, tuple[float, float]] = {}
    for weight in OUTLIER_WEIGHTS:
        weighted = replace(bank, outlier_weight=weight)
        scores = score("knn_examples", weighted, held_out.features, held_out.logits, outlier, held_out.own_example)
        threshold = threshold_at(scores[inside], false_rejection_rate)
        caught[weight] = float(np.mean(scores[~inside] > threshold))
        ranking[weight] = (caught[weight], auroc(scores[inside], scores[~inside]) or 0.0)
    return replace(bank, outlier_weight=max(ranking, key=ranking.get)), caught
