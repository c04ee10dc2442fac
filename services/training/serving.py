"""Loading a saved classifier for serving, and the ONNX Runtime classifier that needs no torch.

A classifier the engine trains is saved with ``model.onnx`` beside its safetensors weights
(``onnx_runtime.export_serving_graph``): the same network, exported once at training time,
with the logits and the classification head's input (the pooled features the chatbot's
out-of-scope detector reads). :class:`OnnxClassifier` runs that graph with ONNX Runtime and
the ``tokenizers`` library alone, so a command that scores one text starts in about a
second instead of waiting for torch and transformers to import (4-6 s on a 2-core CPU).

``loading.load_classifier`` chooses between it and the torch ``TextClassifier``. This module
imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from services import metrics
from services.errors import ModelError, one_line
from services.training.padding import length_sorted_chunks, padded_arrays

log = logging.getLogger(__name__)

SERVING_GRAPH = "model.onnx"  # beside model.safetensors in a classifier folder
LOGITS, FEATURES = "logits", "features"  # the classifier graph's outputs
EMBEDDINGS = "embeddings"  # the sentence-encoder graph's output
# Rows x tokens of one forward pass at most: 64 sentences of PhraseBank length fit, 512-token
# texts go 8 at a time (on a 2-core CPU 20-30% faster than 64 at a time; BENCHMARKS.md).
MAX_BATCH_TOKENS = 4096


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    scores: dict[str, float]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predictions(probabilities: np.ndarray, labels: Sequence[str]) -> list[Prediction]:
    """The most likely label of each row, its probability, and every label's probability."""
    best = probabilities.argmax(axis=1)
    return [
        Prediction(label=labels[index], score=float(row[index]), scores=dict(zip(labels, row.tolist(), strict=True)))
        for index, row in zip(best, probabilities, strict=True)
    ]


class Classifier(Protocol):
    """What serving code needs of a loaded classifier (``TextClassifier`` or ``OnnxClassifier``)."""

    labels: list[str]
    max_length: int
    runtime: str
    precision: str

    def prepare(self) -> Classifier: ...
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...
    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]: ...
    def features_and_logits(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]: ...


class OnnxClassifier:
    """A classifier folder's saved ONNX graph in ONNX Runtime: the interface of ``TextClassifier``.

    Token ids come from the folder's ``tokenizer.json`` through the ``tokenizers`` library,
    truncated to ``max_length`` as the ``transformers`` tokenizer truncates them; logits equal
    the torch model's to float rounding (checked when the graph was exported).
    """

    runtime = "onnx"
    precision = "float32"
    rechecked = 0  # no bfloat16 pass, so nothing is re-scored

    def __init__(self, session: Any, tokenizer: Any, labels: list[str], *, max_length: int, pad_id: int) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.labels = labels
        self.max_length = max_length
        self.pad_id = pad_id
        # Each output's width (the last axis; logits' may be symbolic in a hand-made graph).
        outputs = session.get_outputs()
        self._widths = {o.name: o.shape[-1] if isinstance(o.shape[-1], int) else len(labels) for o in outputs}
        self.has_features = FEATURES in self._widths

    @classmethod
    def from_folder(cls, path: str | Path, *, max_length: int = 128, threads: int | None = None) -> OnnxClassifier:
        """Open ``path/model.onnx`` with the folder's tokenizer and labels."""
        folder = Path(path)
        config = _read_json(folder / "config.json")
        id2label = config.get("id2label") or {}
        if not id2label:
            raise ModelError(f"{folder}: not a classifier (config.json has no id2label)")
        session = open_session(folder / SERVING_GRAPH, threads)
        tokenizer, pad_id = folder_tokenizer(folder, max_length)
        labels = [str(id2label[str(i)]) for i in range(len(id2label))]
        return cls(session, tokenizer, labels, max_length=max_length, pad_id=pad_id)

    def prepare(self) -> OnnxClassifier:
        """Run one text through the graph, so the first real call is as fast as any later one."""
        self.predict_proba(["warm up"])
        return self

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), len(self.labels))``, columns in ``self.labels`` order."""
        return softmax(self._run(texts, batch_size, [LOGITS])[0])

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        return predictions(self.predict_proba(texts, batch_size), self.labels)

    def features_and_logits(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """The classification head's input and the logits, from one pass (see ``TextClassifier``)."""
        if not self.has_features:
            raise ModelError("this model's ONNX graph has no 'features' output to read features from")
        logits, features = self._run(texts, batch_size, [LOGITS, FEATURES])
        return features, logits

    def _run(self, texts: Sequence[str], batch_size: int, outputs: list[str]) -> list[np.ndarray]:
        """``outputs`` of the graph for every text, rows in ``texts`` order."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)] if texts else []
        results = [np.empty((len(texts), self._widths[name]), dtype=np.float32) for name in outputs]
        for chunk in length_sorted_chunks([len(row) for row in ids], max(1, batch_size), MAX_BATCH_TOKENS):
            started = time.perf_counter()
            input_ids, mask = padded_arrays([ids[i] for i in chunk], self.pad_id)
            values = self.session.run(outputs, {"input_ids": input_ids, "attention_mask": mask})
            for result, value in zip(results, values, strict=True):
                result[chunk] = value
            metrics.observe_inference(len(chunk), time.perf_counter() - started)
        return results


class OnnxSentenceEncoder:
    """An encoder's mean-pooled unit vectors from a saved graph (``onnx_runtime.export_sentence_encoder``),
    with the model folder's tokenizer: what ``services.embeddings.Embedder`` runs without torch."""

    def __init__(self, session: Any, tokenizer: Any, pad_id: int, dense: np.ndarray | None = None) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        self.dense = dense  # a sentence-transformers Dense module's (out, in) weight, applied after pooling

    @classmethod
    def open(
        cls, graph: Path, folder: Path, *, max_length: int, dense: np.ndarray | None = None, threads: int | None = None
    ) -> OnnxSentenceEncoder:
        session = open_session(graph, threads)
        tokenizer, pad_id = folder_tokenizer(folder, max_length)
        return cls(session, tokenizer, pad_id, dense)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))] if texts else []

    def __call__(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Unit vectors of one batch of token ids, ``(len(ids), dim)`` float32."""
        input_ids, mask = padded_arrays(ids, self.pad_id)
        vectors = self.session.run([EMBEDDINGS], {"input_ids": input_ids, "attention_mask": mask})[0]
        if self.dense is None:
            return vectors
        mapped = vectors @ self.dense.T  # normalised again: the map is scale-free after it
        return mapped / np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12)


def open_session(graph: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on ``graph``; a one-line ModelError where it cannot be opened."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's choice (the physical cores)
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for a broken file
        raise ModelError(f"{graph}: cannot open the saved ONNX graph: {one_line(exc)}") from None


def folder_tokenizer(folder: Path, max_length: int) -> tuple[Any, int]:
    """The folder's ``tokenizer.json`` truncating at ``max_length`` without padding, and the padding id."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own exception type
        raise ModelError(f"{folder}: cannot read tokenizer.json: {one_line(exc)}") from None
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer, _pad_id(folder, tokenizer)


def model_max_length(folder: Path) -> int | None:
    """``model_max_length`` of the folder's tokenizer config, where it is a real limit."""
    path = folder / "tokenizer_config.json"
    limit = _read_json(path).get("model_max_length") if path.is_file() else None
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({one_line(exc)})") from None


def _pad_id(folder: Path, tokenizer: Any) -> int:
    """The padding token's id: position ids of RoBERTa-like models (MPNet) depend on it."""
    tokenizer_config = folder / "tokenizer_config.json"
    pad = _read_json(tokenizer_config).get("pad_token") if tokenizer_config.is_file() else None
    pad = pad.get("content") if isinstance(pad, dict) else pad
    found = tokenizer.token_to_id(pad) if isinstance(pad, str) else None
    if found is not None:
        return int(found)
    config = folder / "config.json"
    return int((_read_json(config).get("pad_token_id") if config.is_file() else None) or 0)
