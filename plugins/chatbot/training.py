"""Fine-tuning the intent classifier, calibrating its thresholds, (re)indexing the knowledge base.

Public API (the benchmarks drive these directly)::

    train_intent_model(ctx, rows, validation=None, params=None, out_of_scope=()) -> ModelVersion
    index_knowledge_base(ctx, paths=None) -> IndexReport
    train_from_files(ctx, overrides) -> ModelVersion   # what `suite chatbot train` / `suite train` run
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.chatbot.calibration import Calibration, calibrate_confidence, calibrate_margin
from plugins.chatbot.data import is_out_of_scope_label, load_labeled_texts, load_lines
from plugins.chatbot.knowledge import IndexReport, KnowledgeBase, load_eval_queries
from plugins.chatbot.model import IntentPrediction, rank, softmax
from plugins.chatbot.ood import FeatureBank, HeldOut, OutOfScopeDetector, fit_detector, in_scope_logits
from plugins.chatbot.options import INTENT_TASK, PLUGIN, ChatbotOptions, DataPaths
from services.training import LabeledText, split_train_validation
from services.training.engine import FEW_SHOT_EXAMPLES_PER_LABEL
from suite.errors import DataError

if TYPE_CHECKING:
    from services.registry import ModelVersion
    from services.training import TextClassifier
    from suite.context import SuiteContext

log = logging.getLogger(__name__)
TRAIN_PARAM_OPTIONS = ("epochs", "learning_rate", "batch_size", "max_length", "max_steps")


def as_labeled(rows: Iterable[Any]) -> list[LabeledText]:
    """Accept LabeledText, (text, label) pairs or {"text", "label"} dicts."""
    result = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, LabeledText):
            result.append(row)
        elif isinstance(row, Mapping) and "text" in row and "label" in row:
            result.append(LabeledText(str(row["text"]), str(row["label"])))
        elif isinstance(row, Sequence) and not isinstance(row, str) and len(row) == 2:
            result.append(LabeledText(str(row[0]), str(row[1])))
        else:
            raise DataError(f"training row {number}: expected (text, label), got {row!r:.80}")
    return result


def training_params(options: ChatbotOptions, params: Any = None) -> dict[str, Any]:
    """The plugin's defaults for the sample, overridden by ``params`` (a dict or TrainParams)."""
    merged = {name: getattr(options, name) for name in TRAIN_PARAM_OPTIONS if getattr(options, name) is not None}
    if params is not None:
        given = params if isinstance(params, Mapping) else params.model_dump(exclude_none=True)
        merged.update({key: value for key, value in given.items() if value is not None})
    return merged


def train_intent_model(
    ctx: SuiteContext,
    rows: Iterable[Any],
    validation: Iterable[Any] | None = None,
    params: Any = None,
    *,
    out_of_scope: Sequence[str] = (),
    progress: bool = False,
) -> ModelVersion:
    """Fine-tune the chatbot's backbone on ``rows``, calibrate on ``validation``, register and activate.

    Rows labelled ``out_of_scope_label`` (default ``out_of_scope``) never train: with
    ``out_of_scope`` they are the messages the confidence threshold must turn away.
    Without ``validation`` a stratified split of ``rows`` is held out.
    """
    from services.registry import ModelCard

    options: ChatbotOptions = ctx.plugin_options(PLUGIN)
    rows, outside = _split_out_of_scope(as_labeled(rows), options.out_of_scope_label)
    if validation is None:
        train, held_out = split_train_validation(
            rows, fraction=options.validation_fraction, seed=ctx.settings.training.seed
        )
    else:
        train, held_out = rows, as_labeled(validation)
    held_out, more_outside = _split_out_of_scope(held_out, options.out_of_scope_label)
    outside = [*outside, *more_outside, *out_of_scope]
    outside_train: list[str] = []
    if options.out_of_scope_class and outside:  # an extra class: train on some, calibrate on the rest
        outside_train, outside = _split_texts(outside, options.validation_fraction, ctx.settings.training.seed)
        train = [*train, *(LabeledText(text, options.out_of_scope_label) for text in outside_train)]
    resolved = training_params(options, params)
    if options.synthetic_outliers > 0:
        outliers = {"outlier_label": options.out_of_scope_label, "outlier_weight": options.synthetic_outliers}
        resolved = {**outliers, **resolved}
    refitting = validation is None and refits(options.refit, rows, held_out)
    if refitting:  # the first run trains every epoch; the refit as many as were best (see refits())
        resolved = {"early_stopping_patience": 0, **resolved}

    runs = ctx.plugin_dir(PLUGIN) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=runs, prefix="intent-"))
    try:
        result = ctx.trainer.train_classifier(
            ctx.backbone(PLUGIN),
            train,
            held_out or None,
            resolved,
            output_dir=workdir / "model",
            progress=progress,
        )
        load = {
            "device": ctx.settings.training.device,
            "max_length": int(result.params.get("max_length") or options.max_length),
        }
        calibration, detector = calibrate_model(result.model_dir, train, held_out, outside, options, **load)
        refit = None
        if refitting:
            refit_rows = [*rows, *(LabeledText(text, options.out_of_scope_label) for text in outside_train)]
            refit = ctx.trainer.train_classifier(
                ctx.backbone(PLUGIN),
                refit_rows,
                None,
                refit_params(resolved, result.metrics, len(train)),
                output_dir=workdir / "refit",
                progress=progress,
            )
            if detector is not None:  # the refit model's vectors; the thresholds and weights stay the first run's
                refit_classifier = _classifier(refit.model_dir, **load)
                detector.bank = keep_weight(detector.bank, feature_bank(refit_classifier, refit_rows, options, outside))
        retrieval = KnowledgeBase(ctx, options.index).calibration()
        if retrieval:  # recorded with the model; the live value stays with the index
            calibration.retrieval_threshold = retrieval.get("threshold")
            calibration.sources["retrieval_threshold"] = retrieval.get("source", "fallback")
        final = refit or result
        calibration.save(final.model_dir)
        if detector is not None:
            detector.save(final.model_dir)
        card = ModelCard(
            plugin=PLUGIN,
            task=INTENT_TASK,
            kind="classification",
            backbone=result.backbone or ctx.backbone(PLUGIN),
            data_fingerprint=result.data_fingerprint,
            hyperparameters=final.params,
            metrics={
                **result.metrics,
                **({"refit_steps": refit.steps, "refit_examples": refit.train_examples} if refit else {}),
                "confidence_threshold": round(calibration.confidence_threshold, 4),
                "margin_threshold": round(calibration.margin_threshold, 4),
                "pair_threshold": round(calibration.pair_threshold, 4),
                **detector_metrics(detector),
                "validation_examples": len(held_out),
                "out_of_scope_examples": len(outside),
                "out_of_scope_trained": len(outside_train),
            },
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            train_examples=final.train_examples,
            wall_seconds=round(result.wall_seconds + (refit.wall_seconds if refit else 0.0), 3),
            labels=list(result.labels or sorted({row.label for row in train})),
            notes=describe_calibration(calibration, detector) + (REFIT_NOTE if refit else ""),
        )
        return ctx.registry.register(final.model_dir, card, activate=True, move=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


REFIT_NOTE = (
    "; refit on every example after calibrating (validation metrics and thresholds are the first run's, "
    "which trained without the held-out examples)"
)


def refits(mode: str, rows: Sequence[LabeledText], held_out: Sequence[LabeledText]) -> bool:
    """Whether to train again on every example once the held-out ones have calibrated the thresholds.

    With few examples per intent, holding out a fifth costs more accuracy than anything
    else; the refit gets them back. Its thresholds and reported metrics stay the first
    run's, measured on examples that run never saw. The first run trains every configured
    epoch without early stopping, and the refit trains as many epochs as the best of them:
    a few held-out examples per intent are too noisy to stop early on (on BANKING77 with 10
    per intent, early stopping ended one sample's run at epoch 4 of 8, best at 2 on a lead
    of 5 of 154 messages; a 2-epoch refit then scored 0.819 on the test split).
    """
    if mode == "never" or not held_out:
        return False
    intents = len({row.label for row in rows})
    return mode == "always" or len(rows) < FEW_SHOT_EXAMPLES_PER_LABEL * intents


def refit_params(first: Mapping[str, Any], metrics: Mapping[str, Any], first_examples: int) -> dict[str, Any]:
    """The first run's settings for as many epochs as it took to reach its best validation score."""
    batch_size = int(first.get("batch_size") or 16)
    steps_per_epoch = max(1, -(-first_examples // batch_size))
    best_step = int(metrics.get("best_step") or metrics.get("steps") or steps_per_epoch)
    return {**first, "epochs": best_step / steps_per_epoch, "min_steps": 0}


def _split_out_of_scope(rows: list[LabeledText], label: str) -> tuple[list[LabeledText], list[str]]:
    outside = [row for row in rows if is_out_of_scope_label(row.label, label)]
    for name in sorted({row.label for row in outside} - {label}):
        log.warning("rows labelled '%s' are taken as out of scope (they calibrate, never train an intent)", name)
    return [row for row in rows if not is_out_of_scope_label(row.label, label)], [row.text for row in outside]


def _split_texts(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, held out): a seeded ``fraction`` of ``texts`` held out."""
    order = np.random.default_rng(seed).permutation(len(texts))
    cut = len(texts) - max(1, round(fraction * len(texts))) if len(texts) > 1 else len(texts)
    return [texts[i] for i in sorted(order[:cut])], [texts[i] for i in sorted(order[cut:])]


def _classifier(model_dir: Path, device: str, max_length: int) -> TextClassifier:
    from services.training import TextClassifier

    return TextClassifier.from_pretrained(model_dir, device=device, max_length=max_length)


def feature_bank(
    classifier: TextClassifier,
    rows: Sequence[LabeledText],
    options: ChatbotOptions,
    out_of_scope: Sequence[str] = (),
) -> FeatureBank | None:
    """The pooled vectors of the in-scope training ``rows`` and of the out-of-scope examples under
    ``classifier``: ``out_of_scope`` first (in order: calibration leaves each out of its own score),
    then the ``rows`` that trained an out-of-scope class, neighbours for ``knn_examples`` as well."""
    index = {label: i for i, label in enumerate(classifier.labels)}
    known = [row for row in rows if row.label in index and row.label != options.out_of_scope_label]
    if not known:
        return None
    trained_outside = [row.text for row in rows if row.label == options.out_of_scope_label]
    features, _ = classifier.features_and_logits([row.text for row in known] + [*out_of_scope, *trained_outside])
    labels = [index[row.label] for row in known]
    return FeatureBank.fit(features[: len(known)], labels, len(classifier.labels), outliers=features[len(known) :])


def keep_weight(fitted: FeatureBank | None, refit: FeatureBank | None) -> FeatureBank | None:
    """The ``refit`` bank with the outlier weight calibration chose for the ``fitted`` one."""
    if fitted is None or refit is None:
        return refit
    return dataclasses.replace(refit, outlier_weight=fitted.outlier_weight)


def synthetic_outlier_column(options: ChatbotOptions, index: dict[str, int]) -> int | None:
    """The logits' column of a class trained on synthetic outliers alone (no out-of-scope example
    trained it): calibrated as one more out-of-scope score, where a class trained on examples
    decides by its argmax."""
    if options.synthetic_outliers <= 0 or options.out_of_scope_class:
        return None
    return index.get(options.out_of_scope_label)


def calibrate_model(
    model_dir: Path,
    train: Sequence[LabeledText],
    validation: Sequence[LabeledText],
    out_of_scope: Sequence[str],
    options: ChatbotOptions,
    *,
    device: str = "auto",
    max_length: int = 64,
) -> tuple[Calibration, OutOfScopeDetector | None]:
    """Thresholds and the out-of-scope detector, from the fine-tuned model's outputs on held-out
    in-scope and out-of-scope messages (and its vectors of the training messages)."""
    classifier = _classifier(model_dir, device, max_length)
    index = {label: i for i, label in enumerate(classifier.labels)}
    texts = [row.text for row in validation] + list(out_of_scope)
    features, logits = classifier.features_and_logits(texts) if texts else (np.empty((0, 0)), np.empty((0, 0)))
    truth = np.array([index.get(row.label, -1) for row in validation] + [-1] * len(out_of_scope), dtype=np.int64)
    outlier = synthetic_outlier_column(options, index)
    detector = None
    if texts:
        bank = feature_bank(classifier, train, options, out_of_scope)
        # The out-of-scope examples are the bank's, in order: each is scored without itself.
        own_example = np.r_[np.full(len(validation), -1), np.arange(len(out_of_scope))].astype(np.int64)
        detector = fit_detector(
            bank,
            HeldOut(features, logits, truth, own_example),
            method=options.out_of_scope_method or "auto",
            false_rejection_rate=options.false_rejection_rate,
            outlier=outlier,
        )
    if detector is None:  # serving masks the class only through a saved detector: calibrate as it will answer
        outlier = None
    ranked = [rank(row, classifier.labels) for row in softmax(in_scope_logits(logits, outlier))] if texts else []
    rejected = detector.scores(features, logits) > detector.threshold if detector else np.zeros(len(texts), dtype=bool)
    if texts and outlier is None and options.out_of_scope_label in index:  # a class trained on examples
        rejected |= logits.argmax(axis=1) == index[options.out_of_scope_label]
    calibration = calibrate_thresholds(ranked, truth, rejected, classifier.labels, options)
    routing = expected_routing(ranked, truth, rejected, calibration, classifier.labels)
    calibration.details["validation_routing"] = routing
    return calibration, detector


def calibrate_thresholds(
    ranked: list[IntentPrediction],
    truth: np.ndarray,
    rejected: np.ndarray,
    labels: list[str],
    options: ChatbotOptions,
) -> Calibration:
    """Confidence, pair and margin thresholds; the margin one on in-scope messages the detector lets through."""
    predicted = np.array([labels.index(p.intent) for p in ranked], dtype=np.int64)
    correct = predicted == truth
    # Out-of-scope messages are the detector's to turn away: confidence may refuse few customers.
    refusing = {"in_scope": truth >= 0, "max_rejection": options.false_rejection_rate}
    confidence, confidence_source, confidence_details = calibrate_confidence(
        np.array([p.confidence for p in ranked]),
        correct,
        target_precision=options.target_precision,
        fallback=options.fallback_confidence_threshold,
        **refusing,
    )
    in_pair = np.array(
        [t >= 0 and labels[t] in {i for i, _ in p.ranked[:2]} for p, t in zip(ranked, truth, strict=True)], dtype=bool
    )
    pair, pair_source, pair_details = calibrate_confidence(
        np.array([sum(p for _, p in prediction.ranked[:2]) for prediction in ranked]),
        in_pair,
        target_precision=options.target_precision,
        fallback=options.fallback_pair_threshold,
        **refusing,
    )
    answered = (truth >= 0) & ~rejected
    margins = np.array([p.margin for p in ranked])
    margin, margin_source, margin_details = calibrate_margin(
        margins[answered],
        correct[answered],
        target_precision=options.target_precision,
        max_clarify_rate=options.max_clarify_rate,
        fallback=options.fallback_margin_threshold,
    )
    in_scope = truth >= 0
    return Calibration(
        confidence_threshold=confidence,
        margin_threshold=margin,
        pair_threshold=pair,
        sources={
            "confidence_threshold": confidence_source,
            "margin_threshold": margin_source,
            "pair_threshold": pair_source,
        },
        details={
            "confidence": confidence_details,
            "margin": margin_details,
            "pair": pair_details,
            "validation_accuracy": float(correct[in_scope].mean()) if in_scope.any() else None,
        },
    )


def expected_routing(
    ranked: list[IntentPrediction],
    truth: np.ndarray,
    rejected: np.ndarray,
    calibration: Calibration,
    labels: list[str],
) -> dict[str, dict[str, float]]:
    """Where the held-out messages would go: shares per route, in scope and out of scope."""
    routes = []
    for prediction, label, outside in zip(ranked, truth, rejected, strict=True):
        if outside or prediction.confidence < calibration.confidence_threshold:
            routes.append("out of scope")
        elif (
            prediction.margin < calibration.margin_threshold
            and sum(p for _, p in prediction.ranked[:2]) >= (calibration.pair_threshold or 0)
            and prediction.runner_up is not None
        ):
            routes.append("clarify")
        else:
            routes.append("right intent" if label >= 0 and labels[label] == prediction.intent else "wrong intent")
    result = {}
    for name, mask in (("in_scope", truth >= 0), ("out_of_scope", truth < 0)):
        chosen = [route for route, keep in zip(routes, mask, strict=True) if keep]
        if chosen:
            result[name] = {route: round(chosen.count(route) / len(chosen), 4) for route in ROUTE_NAMES}
            result[name]["messages"] = len(chosen)
    return result


ROUTE_NAMES = ("right intent", "wrong intent", "clarify", "out of scope")


def detector_metrics(detector: OutOfScopeDetector | None) -> dict[str, Any]:
    if detector is None:
        return {}
    metrics: dict[str, Any] = {
        "out_of_scope_method": detector.method,
        "out_of_scope_threshold": round(detector.threshold, 4),
        "out_of_scope_false_rejection": detector.details.get("false_rejection_rate"),
    }
    if "auroc" in detector.details:
        metrics["out_of_scope_auroc"] = detector.details["auroc"].get(detector.method)
        metrics["out_of_scope_caught"] = detector.details.get("out_of_scope_caught")
    if "knn_examples_weight" in detector.details:
        metrics["out_of_scope_examples_weight"] = detector.details["knn_examples_weight"]
    return metrics


def describe_calibration(calibration: Calibration, detector: OutOfScopeDetector | None = None) -> str:
    sources = calibration.sources
    parts = [
        f"confidence {calibration.confidence_threshold:.3f} ({sources.get('confidence_threshold')})",
        f"margin {calibration.margin_threshold:.3f} ({sources.get('margin_threshold')})",
        f"pair {calibration.pair_threshold:.3f} ({sources.get('pair_threshold')})",
    ]
    if calibration.retrieval_threshold is not None:
        parts.append(f"retrieval {calibration.retrieval_threshold:.3f} ({sources['retrieval_threshold']})")
    if detector is not None:
        rate = detector.details.get("false_rejection_rate_target", 0)
        parts.append(f"out of scope: {detector.method} score > {detector.threshold:.4g} (rejects {rate:.0%} in scope)")
    else:
        parts.append("no out-of-scope detector (too few held-out messages)")
    return "thresholds: " + ", ".join(parts) + "; details in chatbot_calibration.json and ood.json"


def index_knowledge_base(ctx: SuiteContext, paths: Sequence[Path | str] | None = None) -> IndexReport:
    """(Re)index the knowledge base (configured paths by default) and calibrate the retrieval threshold."""
    options: ChatbotOptions = ctx.plugin_options(PLUGIN)
    data = DataPaths.from_options(options)
    chosen = [Path(p).expanduser() for p in paths] if paths else data.knowledge
    # The sample retrieval queries are about the sample knowledge base only.
    eval_path = data.retrieval_eval if not paths or options.retrieval_eval else None
    return KnowledgeBase(ctx, options.index, top_k=options.top_k).build(
        chosen,
        max_chars=options.passage_max_chars,
        eval_queries=load_eval_queries(eval_path),
        fallback_threshold=options.fallback_retrieval_threshold,
    )


def train_from_files(ctx: SuiteContext, overrides: Mapping[str, Any] | None = None) -> ModelVersion:
    """Index the knowledge base, then fine-tune on the configured data (``overrides`` may name others).

    ``overrides``: epochs, max_steps, batch_size, learning_rate, max_length (training),
    data (a labelled file instead of the configured one), extra (more labelled files),
    index (False skips the knowledge base), progress (a progress bar, default True).
    """
    overrides = dict(overrides or {})
    options: ChatbotOptions = ctx.plugin_options(PLUGIN)
    data = DataPaths.from_options(options)
    data_path = Path(overrides["data"]).expanduser() if overrides.get("data") else data.data
    extra = [*options.extra_data, *_as_list(overrides.get("extra"))]
    rows = load_labeled_texts(data_path)
    for path in extra:
        rows.extend(load_labeled_texts(Path(path).expanduser()))
    # The sample out-of-scope messages only make sense beside the sample intents.
    oos_path = data.out_of_scope if not overrides.get("data") or options.out_of_scope else None
    out_of_scope = load_lines(oos_path) if oos_path else []
    if overrides.get("index", True):
        index_knowledge_base(ctx)
    params = {key: overrides[key] for key in TRAIN_PARAM_OPTIONS if overrides.get(key) is not None}
    return train_intent_model(
        ctx, rows, params=params, out_of_scope=out_of_scope, progress=bool(overrides.get("progress", True))
    )


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str | Path) else list(value)
