"""The active intent classifier with its calibration, loaded once per process per version."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from plugins.chatbot.calibration import Calibration
from plugins.chatbot.ood import OutOfScopeDetector, in_scope_logits, softmax
from plugins.chatbot.options import INTENT_TASK, PLUGIN
from suite.errors import ModelError

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from services.training.serving import Classifier
    from suite.context import SuiteContext

NO_MODEL = "no chatbot intent model yet: run `suite chatbot train` (or `suite train chatbot`)"
ACTIVE_RECHECK_SECONDS = 1.0  # how stale the "which version is active" answer may be


@dataclass(frozen=True)
class IntentPrediction:
    """Every intent with its probability, best first."""

    ranked: list[tuple[str, float]]
    out_of_scope_score: float | None = None  # the model's out-of-scope detector's score, when it has one
    out_of_scope: bool = False  # the score is above the detector's threshold

    @property
    def intent(self) -> str:
        return self.ranked[0][0]

    @property
    def confidence(self) -> float:
        return self.ranked[0][1]

    @property
    def runner_up(self) -> tuple[str, float] | None:
        return self.ranked[1] if len(self.ranked) > 1 else None

    @property
    def margin(self) -> float:
        return self.confidence - (self.runner_up[1] if self.runner_up else 0.0)

    def probability(self, intent: str) -> float:
        return next((p for label, p in self.ranked if label == intent), 0.0)

    def top2(self) -> list[list[object]]:
        return [[label, round(p, 4)] for label, p in self.ranked[:2]]


@dataclass(frozen=True)
class IntentModel:
    version: ModelVersion
    classifier: Classifier
    calibration: Calibration | None
    detector: OutOfScopeDetector | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.classifier.labels)

    def predict(self, text: str) -> IntentPrediction:
        return self.predict_many([text])[0]

    def predict_many(self, texts: list[str]) -> list[IntentPrediction]:
        """Ranked intents; with a detector, its score too (from the same forward pass)."""
        labels = self.classifier.labels
        if self.detector is None:
            return [rank(row, labels) for row in self.classifier.predict_proba(texts)]
        features, logits = self.classifier.features_and_logits(texts)
        scores = self.detector.scores(features, logits)
        # A class trained on synthetic outliers speaks through its calibrated score, never as an intent.
        probabilities = softmax(in_scope_logits(logits, self.detector.outlier))
        return [
            rank(row, labels, score=float(value), threshold=self.detector.threshold)
            for row, value in zip(probabilities, scores, strict=True)
        ]


def rank(
    probabilities: np.ndarray, labels: list[str], *, score: float | None = None, threshold: float | None = None
) -> IntentPrediction:
    order = np.argsort(-probabilities, kind="stable")
    outside = score is not None and threshold is not None and score > threshold
    return IntentPrediction([(labels[i], float(probabilities[i])) for i in order], score, outside)


_models: dict[str, IntentModel] = {}
_models_lock = threading.Lock()


def load_version(
    version: ModelVersion,
    *,
    device: str = "auto",
    quantize: bool = False,
    runtime: str = "auto",
    precision: str = "auto",
) -> IntentModel:
    """The model of ``version``, cached by its folder so a newly activated version is picked up."""
    from services.training.loading import load_classifier

    key = f"{version.path}|{device}|{quantize}|{runtime}|{precision}"
    with _models_lock:
        cached = _models.get(key)
        if cached is None:
            # Truncate as in training: the card records the run's max_length.
            max_length = int(version.card.hyperparameters.get("max_length") or 128)
            classifier = load_classifier(
                version.path,
                device=device,
                max_length=max_length,
                quantize=quantize,
                runtime=runtime,
                precision=precision,
            )
            cached = IntentModel(
                version, classifier, Calibration.load(version.path), OutOfScopeDetector.load(version.path)
            )
            _models.clear()  # one intent model per process: older versions are not needed
            _models[key] = cached
    return cached


class ActiveIntentModel:
    """Finds the ACTIVE registry version of ``chatbot/intent`` (re-checked at most once a second)."""

    def __init__(self, ctx: SuiteContext, *, quantize: bool = False, out_of_scope_method: str | None = None) -> None:
        self.ctx = ctx
        self.quantize = quantize
        self.out_of_scope_method = out_of_scope_method
        self._checked_at = -1.0
        self._version: ModelVersion | None = None

    def get(self) -> IntentModel:
        now = time.monotonic()
        if self._version is None or now - self._checked_at > ACTIVE_RECHECK_SECONDS:
            self._version = self.ctx.registry.active(PLUGIN, INTENT_TASK)
            self._checked_at = now
        if self._version is None:
            raise ModelError(NO_MODEL)
        training = self.ctx.settings.training
        runtime = "torch" if self.quantize else training.inference_runtime  # int8 is a torch model
        device = "cpu" if self.quantize else training.device
        precision = "float32" if self.quantize else training.inference_precision
        model = load_version(self._version, device=device, quantize=self.quantize, runtime=runtime, precision=precision)
        if model.detector is None or self.out_of_scope_method in (None, "auto", model.detector.method):
            return model
        return replace(model, detector=model.detector.using(self.out_of_scope_method))
