"""ONNX Runtime for a loaded classifier: the same weights, a faster CPU engine.

The model is exported in memory when it is loaded (a few seconds for a small encoder;
nothing is written to the model folder, so registry checksums stay valid), and a probe
batch must give the torch model's logits before the session is used. ``onnxruntime``
is an optional dependency: ``pip install 'suite[onnx]'``.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from services.errors import ConfigError, ModelError, one_line
from services.training.batching import PooledEmbeddings
from services.training.probes import CHECK_TEXTS, PROBE_TEXTS, LogitsOnly

log = logging.getLogger(__name__)

INSTALL_HINT = "runtime 'onnx' needs onnxruntime: pip install 'suite[onnx]'"
_OPSET = 17


class OnnxLogits:
    """Callable like a classifier's forward pass, returning logits as a numpy array."""

    def __init__(self, session) -> None:
        self.session = session
        self.size_bytes = 0  # of the serialised graph

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> np.ndarray:
        ids = input_ids.cpu().numpy()
        mask = np.ones_like(ids) if attention_mask is None else attention_mask.cpu().numpy()
        return self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def onnx_logits(model: torch.nn.Module, tokenizer, threads: int | None = None, *, quantize: bool = False) -> OnnxLogits:
    """Export ``model`` (a sequence classifier on the CPU) and open an ONNX Runtime session for it.

    ``quantize=True`` runs ONNX Runtime's dynamic int8 quantization on the graph (weights in
    int8, activations quantized per batch): smaller and faster, probabilities within
    ``INT8_TOLERANCE`` of float32's on the probe batch or the session is refused."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    probe = tokenizer(PROBE_TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    try:
        graph = _export(model, probe["input_ids"], probe["attention_mask"])
        if quantize:
            graph = quantized(graph)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except ImportError as exc:  # the exporter's own optional dependencies (onnx, onnxscript)
        raise ConfigError(f"{INSTALL_HINT} ({one_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types for unsupported models
        raise ModelError(f"cannot export this model to ONNX: {one_line(exc)}") from None
    runner = OnnxLogits(session)
    with torch.inference_mode():
        expected = model(**probe).logits.float().numpy()
    actual = runner(probe["input_ids"], probe["attention_mask"])
    if quantize:
        agrees = np.allclose(_softmax(expected), _softmax(actual), atol=INT8_TOLERANCE)
    else:
        agrees = np.allclose(expected, actual, atol=1e-4, rtol=1e-4)
    if not agrees:
        raise ModelError(
            f"the ONNX{' int8' if quantize else ''} export of this model disagrees with it; use runtime 'torch'"
        )
    runner.size_bytes = len(graph)
    return runner


# Largest change of a probability that int8 rounding may cause on the probe batch.
INT8_TOLERANCE = 0.1


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def quantized(graph: bytes, *, per_channel: bool = True) -> bytes:
    """``graph`` with dynamic int8 quantization of its matrix multiplications (ONNX Runtime's tool, which
    works on files).

    Weights get one scale per output channel rather than one per matrix: a fine-tuned encoder's
    matrices hold a few large columns, and a shared scale rounds the rest coarsely. On BANKING77
    students this more than halved int8's probability changes (BENCHMARKS.md, "int8 weight scales")."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="suite-onnx-") as folder:
        source, target = Path(folder) / "model.onnx", Path(folder) / "model.int8.onnx"
        source.write_bytes(graph)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=per_channel)
        return target.read_bytes()


def _export(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    output_names: tuple[str, ...] = ("logits",),
) -> bytes:
    buffer = io.BytesIO()
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    dynamic.update({name: {0: "batch"} for name in output_names})
    with warnings.catch_warnings():  # tracer warnings about shape-dependent Python control flow
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (input_ids, attention_mask),
            buffer,
            input_names=["input_ids", "attention_mask"],
            output_names=list(output_names),
            dynamic_axes=dynamic,
            opset_version=_OPSET,
            dynamo=False,  # the TorchScript exporter handles HF encoders without extra packages
        )
    return buffer.getvalue()


# -- the serving graph saved with a trained classifier ---------------------------------------------


class _LogitsAndFeatures(torch.nn.Module):
    """A classifier's logits and its head's input (the pooled vector), as one traceable forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        hook = self.model.classifier.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        try:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        finally:
            hook.remove()
        pooled = captured[-1]
        return logits, pooled[:, 0] if pooled.dim() == 3 else pooled  # heads on a token's vector


def export_serving_graph(model: torch.nn.Module, tokenizer, folder: Path) -> bool:
    """Write ``folder/model.onnx``: the classifier's logits (and, where it has a ``classifier``
    head, that head's input as ``features``) for :class:`~services.training.serving.OnnxClassifier`.

    Returns False, with the reason logged, where the model does not export or the graph
    disagrees with it (see :func:`_checked_graph`); the folder then serves through torch.
    """
    from services.training.serving import FEATURES, LOGITS, SERVING_GRAPH

    model = model.eval()
    with_features = isinstance(getattr(model, "classifier", None), torch.nn.Module)
    module = _LogitsAndFeatures(model) if with_features else LogitsOnly(model)
    outputs = (LOGITS, FEATURES) if with_features else (LOGITS,)
    graph = _checked_graph(module, LogitsOnly(model), tokenizer, outputs, type(model).__name__)
    if graph is not None:
        (Path(folder) / SERVING_GRAPH).write_bytes(graph)
    return graph is not None


def export_sentence_encoder(model: torch.nn.Module, tokenizer, path: Path) -> bool:
    """Write an encoder's mean-pooled unit vectors (``embeddings``) as an ONNX graph at ``path``, for
    :class:`~services.training.serving.OnnxSentenceEncoder`; False (reason logged) where it cannot."""
    from services.training.serving import EMBEDDINGS

    module = PooledEmbeddings(model.eval()).eval()
    graph = _checked_graph(module, module, tokenizer, (EMBEDDINGS,), type(model).__name__)
    if graph is None:
        return False
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # another process may be reading the cache
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(graph)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        log.warning("cannot save the encoder's ONNX graph at %s: %s", path, one_line(exc))
        return False
    return True


def _checked_graph(
    module: torch.nn.Module, reference: torch.nn.Module, tokenizer, outputs: tuple[str, ...], name: str
) -> bytes | None:
    """``module`` exported to ONNX, or None where it does not export or where ONNX Runtime does not
    give ``reference``'s output (the graph's first) on texts the export did not see."""
    try:
        import onnxruntime
    except ImportError:
        log.info("no ONNX graph saved: onnxruntime is not installed")
        return None
    device = next(module.parameters()).device
    probe = tokenizer(PROBE_TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False).to(device)
    check = tokenizer(CHECK_TEXTS, padding=True, return_tensors="np", return_token_type_ids=False)
    try:
        graph = _export(module.eval(), probe["input_ids"], probe["attention_mask"], outputs)
        session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
        feed = {"input_ids": check["input_ids"], "attention_mask": check["attention_mask"]}
        actual = session.run([outputs[0]], feed)[0]
        with torch.inference_mode():
            tensors = [torch.from_numpy(feed[key]).to(device) for key in ("input_ids", "attention_mask")]
            expected = reference(*tensors).float().cpu().numpy()
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types for unsupported models
        log.warning("no ONNX graph saved: cannot export %s: %s", name, one_line(exc))
        return None
    if not np.allclose(expected, actual, atol=1e-4, rtol=1e-3):
        log.warning("no ONNX graph saved: the ONNX export of %s disagrees with it", name)
        return None
    return graph
