"""Fast inference on a saved classifier: no pipeline machinery, one tokenizer call per request,
length-sorted batches padded to their own longest text, ``torch.inference_mode``, and on a
CPU the forward pass as a frozen TorchScript trace, which skips the per-module Python calls.
``runtime="onnx"`` runs the same weights in ONNX Runtime instead (optional dependency), and
``precision="bfloat16"`` (or ``"auto"`` on a CPU with native bfloat16 arithmetic) runs a
bfloat16 copy and re-checks near ties in float32, so the labels stay float32's."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from services import metrics
from services.errors import ConfigError, ModelError, one_line
from services.training.batching import PooledEmbeddings, length_sorted_chunks, pad_batch
from services.training.folders import check_weights_format, resolve_device
from services.training.probes import CHECK_TEXTS, PROBE_TEXTS, LogitsOnly
from services.training.serving import MAX_BATCH_TOKENS, Prediction, predictions

log = logging.getLogger(__name__)

Runtime = Literal["torch", "onnx"]
RUNTIMES: tuple[str, ...] = ("torch", "onnx")
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
# A bfloat16 forward pass moves a probability by up to 0.02 (p99 0.008; a MiniLM sentiment
# classifier on 3,876 PhraseBank sentences), so the gap between two classes by up to 0.04.
# Rows whose two best classes are closer than this are scored again in float32, so rounding
# does not change a label.
NEAR_TIE_MARGIN = 0.1
# A first call with this many texts is worth tracing for (tracing costs about as much as
# scoring a few hundred sentences eagerly, and saves 15-30% on each later one).
TRACE_BATCH_ROWS = 256


class TextClassifier:
    """A fine-tuned sequence classifier, ready to predict.

    Predictions equal those of ``transformers.pipeline("text-classification")`` on the
    same folder (softmax over the logits; the same truncation for texts within
    ``max_length`` tokens), at a fraction of the cost per call.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        *,
        device: torch.device,
        max_length: int = 128,
        logits=None,
        fast_model: torch.nn.Module | None = None,
        runner: torch.nn.Module | None = None,
        trace: bool = False,
        bfloat16: bool = False,
    ) -> None:
        self.model = model.eval()
        # Tracing costs a few forward passes and JIT passes (seconds on a busy laptop): a
        # one-shot command never pays it back, a server does. So it waits for ``prepare()``,
        # a second call or a big batch; until then the eager model answers (same outputs).
        self._trace_pending = trace
        self._bfloat16_pending = bfloat16 and fast_model is None  # the copy is made by prepare() too
        self._calls = 0
        self._prepare_lock = threading.Lock()
        # What runs ``model``'s float32 forward pass: a trace of it, or None for ``model`` itself.
        self._exact = runner if runner is not None else self.model
        # ``logits(input_ids, mask)``: another engine for the forward pass (ONNX Runtime); None is torch.
        self._logits = logits
        self.runtime: str = "torch" if logits is None else "onnx"
        # A bfloat16 copy that scores first; ``model`` re-scores its near ties.
        self._fast_model = fast_model.eval() if fast_model is not None else None
        self.precision: str = "bfloat16" if fast_model is not None or bfloat16 else "float32"
        self.rechecked = 0  # rows re-scored in float32 so far
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        id2label = model.config.id2label
        self.labels: list[str] = [str(id2label[i]) for i in range(model.config.num_labels)]
        self.pad_id = tokenizer.pad_token_id or 0
        # A fast tokenizer called with truncation settings from two threads at once raises
        # "Already borrowed"; the model itself is safe to share.
        self._tokenizer_lock = threading.Lock()
        self._features_lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str = "auto",
        max_length: int = 128,
        quantize: bool = False,
        runtime: Runtime = "torch",
        precision: Precision = "float32",
    ) -> TextClassifier:
        """Load a classifier folder (safetensors only; never unpickles).

        ``quantize=True`` turns the linear layers into dynamic int8 ones (CPU only): about
        2-3x faster on small batches, predictions may differ on near ties.
        ``runtime="onnx"`` exports the model in memory and runs it in ONNX Runtime (CPU
        only; needs ``suite[onnx]``); its logits match torch's to float rounding. With
        ``quantize=True`` as well, ONNX Runtime's dynamic int8 quantization runs on the graph.
        ``precision="bfloat16"`` scores with a bfloat16 copy of the model (3-4x faster on a
        CPU with AMX) and re-scores rows whose two best classes are within
        ``NEAR_TIE_MARGIN`` in float32: labels equal float32's, probabilities differ by up to
        about 0.02. ``"auto"`` picks it where the CPU has native bfloat16 arithmetic.
        """
        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown inference runtime '{runtime}' (choose {', '.join(RUNTIMES)})")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown inference precision '{precision}' (choose {', '.join(PRECISIONS)})")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from services.training.pooling import register_auto_classes

        register_auto_classes()
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ModelError(f"{folder}: not a model folder (no config.json)")
        check_weights_format(folder)
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder}/config.json: unreadable ({one_line(exc)})") from None
        if not config.get("id2label"):
            raise ModelError(f"{folder}: not a classifier (config.json has no id2label)")
        target = resolve_device("cpu" if runtime == "onnx" and device == "auto" else device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, use_safetensors=True, local_files_only=True
            )
        except Exception as exc:  # transformers raises many types for a broken folder
            raise ModelError(f"{folder}: cannot load classifier: {one_line(exc)}") from None
        model = model.to(target).eval()
        if runtime == "onnx":
            if target.type != "cpu" or precision == "bfloat16":
                raise ConfigError("runtime 'onnx' runs on the CPU, in float32 (or int8 with quantize)")
            from services.training.onnx_runtime import onnx_logits

            logits = onnx_logits(model, tokenizer, quantize=quantize)
            return cls(model, tokenizer, device=target, max_length=max_length, logits=logits)
        resolved = resolve_precision(precision, target, quantize=quantize)
        if quantize:
            if target.type != "cpu":
                raise ModelError("quantize=True runs on the CPU only")
            return cls(quantized_linear_layers(model), tokenizer, device=target, max_length=max_length)
        trace, bfloat16 = target.type == "cpu", resolved == "bfloat16"
        return cls(model, tokenizer, device=target, max_length=max_length, trace=trace, bfloat16=bfloat16)

    def prepare(self) -> TextClassifier:
        """Make the bfloat16 copy and trace the forward passes (on a CPU) now, so that the next call
        is as fast as any later one.

        A server calls this at start-up; otherwise it happens before the second call or the
        first batch of ``TRACE_BATCH_ROWS`` texts (until then the float32 model answers: the
        labels are the same). Returns ``self``.
        """
        with self._prepare_lock:
            if self._bfloat16_pending:
                self._fast_model = copy.deepcopy(self.model).to(torch.bfloat16).eval()
                self._bfloat16_pending = False
            if self._trace_pending:
                self._exact = traced_for_inference(self.model, self.tokenizer, tolerance=FLOAT32_TOLERANCE)
                if self._fast_model is not None:
                    self._fast_model = traced_for_inference(
                        self._fast_model, self.tokenizer, tolerance=BFLOAT16_TOLERANCE
                    )
                self._trace_pending = False
        return self

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), len(self.labels))``, columns in ``self.labels`` order."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        probabilities = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return probabilities
        self._calls += 1
        if (self._trace_pending or self._bfloat16_pending) and (self._calls > 1 or len(texts) >= TRACE_BATCH_ROWS):
            self.prepare()
        ids = self._token_ids(list(texts))
        batch_size = max(1, batch_size)
        with torch.inference_mode():
            first = self._exact if self._fast_model is None else self._fast_model
            self._score_rows(ids, np.arange(len(ids)), probabilities, batch_size, first)
            if self._fast_model is not None:
                near_ties = _near_ties(probabilities, NEAR_TIE_MARGIN)
                self._score_rows(ids, near_ties, probabilities, batch_size, self._exact)
                self.rechecked += len(near_ties)
        return probabilities

    def _score_rows(
        self, ids: list[list[int]], rows: np.ndarray, out: np.ndarray, batch_size: int, model: torch.nn.Module
    ) -> None:
        for chunk in length_sorted_chunks([len(ids[i]) for i in rows], batch_size, MAX_BATCH_TOKENS):
            selected = rows[chunk]
            started = time.perf_counter()
            input_ids, mask = pad_batch([ids[i] for i in selected], self.pad_id, self.device)
            out[selected] = self._probabilities(model, input_ids, mask)
            metrics.observe_inference(len(selected), time.perf_counter() - started)

    def _probabilities(self, model: torch.nn.Module, input_ids: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
        if self._logits is not None:
            logits = self._logits(input_ids, mask)
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        return logits.float().softmax(dim=-1).cpu().numpy()

    def features_and_logits(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """The classification head's input (the pooled sentence vector) and the logits, from one
        float32 forward pass of the eager model: what out-of-scope scores are built on.

        Shapes ``(len(texts), hidden)`` and ``(len(texts), len(self.labels))``; the labels
        these logits give are the float32 ones ``predict_proba`` gives.
        """
        head = getattr(self.model, "classifier", None)
        if not isinstance(head, torch.nn.Module):
            raise ModelError(f"{type(self.model).__name__} has no 'classifier' head to read features from")
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = self._token_ids(texts)
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        captured: list[torch.Tensor] = []
        features: np.ndarray | None = None
        # The hook sees every call of the shared model: one caller at a time.
        with self._features_lock, torch.inference_mode():
            hook = head.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
            try:
                for chunk in length_sorted_chunks([len(row) for row in ids], max(1, batch_size), MAX_BATCH_TOKENS):
                    input_ids, mask = pad_batch([ids[i] for i in chunk], self.pad_id, self.device)
                    captured.clear()
                    logits[chunk] = self.model(input_ids=input_ids, attention_mask=mask).logits.float().cpu().numpy()
                    pooled = captured[-1].float()
                    pooled = pooled[:, 0] if pooled.dim() == 3 else pooled  # heads on a token's vector
                    if features is None:
                        features = np.empty((len(texts), pooled.shape[-1]), dtype=np.float32)
                    features[chunk] = pooled.cpu().numpy()
            finally:
                hook.remove()
        return (features if features is not None else np.empty((0, 0), dtype=np.float32)), logits

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        with self._tokenizer_lock:
            return self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        """The most likely label of each text, its probability, and every label's probability."""
        return predictions(self.predict_proba(texts, batch_size), self.labels)


def _near_ties(probabilities: np.ndarray, margin: float) -> np.ndarray:
    """Rows whose best and second-best probabilities are less than ``margin`` apart."""
    if probabilities.shape[1] < 2 or not len(probabilities):
        return np.arange(0)
    top_two = np.partition(probabilities, -2, axis=1)[:, -2:]
    return np.flatnonzero(top_two[:, 1] - top_two[:, 0] < margin)


# -- precision ----------------------------------------------------------------------------------


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX512-BF16), where it beats float32."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so looked up with care
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def quantized_linear_layers(model: torch.nn.Module, *, per_channel: bool = True) -> torch.nn.Module:
    """``model`` with its linear layers in dynamic int8, by default with one weight scale per output
    channel, as ONNX int8 has (see ``onnx_runtime.quantized``)."""
    layers = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig} if per_channel else {torch.nn.Linear}
    with warnings.catch_warnings():  # deprecated in favour of torchao, which is not a dependency
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, layers, dtype=torch.qint8)


def resolve_precision(precision: str, device: torch.device, *, quantize: bool = False) -> str:
    """``"float32"`` or ``"bfloat16"``: what ``precision`` means for a torch model on ``device``."""
    if precision == "auto":
        return "bfloat16" if device.type == "cpu" and not quantize and native_bfloat16() else "float32"
    if precision == "bfloat16" and quantize:
        raise ConfigError("precision 'bfloat16' and quantize exclude each other")
    return precision


class TracedClassifier(torch.nn.Module):
    """A classifier's forward pass as a frozen TorchScript trace, called like the model.

    On a CPU a MiniLM forward pass over one sentence spends about a third of its time in
    Python module calls; the trace skips them (4.7 -> 3.2 ms in bfloat16; 15-20% more
    documents per second in float32 at batch 1, 8 and 64) with the same outputs to rounding.
    """

    def __init__(self, traced: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.traced = traced

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: object):
        from transformers.modeling_outputs import SequenceClassifierOutput

        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        return SequenceClassifierOutput(logits=self.traced(input_ids, mask))


# (atol, rtol) within which a trace must give the model's logits.
FLOAT32_TOLERANCE = (1e-4, 1e-4)
BFLOAT16_TOLERANCE = (0.05, 0.02)  # the same arithmetic, rounded to 8 bits in another order


def traced_for_inference(
    model: torch.nn.Module, tokenizer, *, tolerance: tuple[float, float] = FLOAT32_TOLERANCE
) -> torch.nn.Module:
    """``model`` traced and frozen, if the trace gives its logits on texts it was not traced
    on; otherwise ``model`` itself.

    The trace runs on a padded batch, so it keeps the masking; the check batch has other
    sizes, so a shape baked into the trace would show. ``torch.jit`` is deprecated in
    favour of ``torch.compile``, which needs a C++ toolchain and compiles per shape: should
    tracing fail or go away, the eager model serves.
    """
    device = next(model.parameters()).device

    def batch(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False).to(device)
        return encoded["input_ids"], encoded["attention_mask"]

    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # deprecation and tracer warnings: the check below decides
            traced = torch.jit.freeze(torch.jit.trace(LogitsOnly(model).eval(), batch(PROBE_TEXTS), check_trace=False))
            check = batch(CHECK_TEXTS)
            expected, actual = LogitsOnly(model)(*check).float(), traced(*check).float()
        if torch.allclose(expected, actual, atol=tolerance[0], rtol=tolerance[1]):
            return TracedClassifier(traced)
        log.debug("traced %s disagrees with it; using it eagerly", type(model).__name__)
    except Exception as exc:  # any tracing problem: the eager model is always right
        log.debug("cannot trace %s: %s", type(model).__name__, exc)
    return model


# -- sentence embeddings ------------------------------------------------------------------------


# (atol, rtol) within which a traced encoder must give the eager one's unit vectors.
EMBEDDING_TOLERANCE = (1e-4, 1e-3)


def fast_sentence_encoder(
    model: torch.nn.Module, tokenizer, *, precision: Precision = "float32"
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(input_ids, attention_mask) -> (n, dim)`` unit vectors: the inference path of
    :class:`TextClassifier` for an encoder (a frozen TorchScript trace on a CPU, checked against
    the eager model on texts it was not traced on; a bfloat16 copy when ``precision`` resolves to
    bfloat16). The vectors of a bfloat16 copy differ from float32's by about 1e-3 in cosine."""
    device = next(model.parameters()).device
    if resolve_precision(precision, device) == "bfloat16":
        model = copy.deepcopy(model).to(torch.bfloat16)
        tolerance = (0.02, 0.02)
    else:
        tolerance = EMBEDDING_TOLERANCE
    pooled = PooledEmbeddings(model).eval()
    if device.type != "cpu":
        return pooled

    def batch(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False).to(device)
        return encoded["input_ids"], encoded["attention_mask"]

    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(pooled, batch(PROBE_TEXTS), check_trace=False))
            check = batch(CHECK_TEXTS)
            expected, actual = pooled(*check), traced(*check)
        if torch.allclose(expected, actual, atol=tolerance[0], rtol=tolerance[1]):
            return traced
        log.debug("traced encoder disagrees with the eager one; using it eagerly")
    except Exception as exc:  # any tracing problem: the eager model is always right
        log.debug("cannot trace the encoder: %s", exc)
    return pooled
