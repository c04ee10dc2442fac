"""ONNX Runtime for a loaded classifier: the same weights, a faster CPU engine.

The model is exported in memory when it is loaded (a few seconds for a small encoder;
nothing is written to the model folder, so registry checksums stay valid), and a probe
batch must give the torch model's logits before the session is used. ``onnxruntime``
is an optional dependency: ``pip install 'suite[onnx]'``.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import torch

from services.errors import ConfigError, ModelError, one_line

log = logging.getLogger(__name__)

INSTALL_HINT = "runtime 'onnx' needs onnxruntime: pip install 'suite[onnx]'"
_PROBE_TEXTS = ["a short one", "a somewhat longer probe sentence, padded against the short one"]
_OPSET = 17


class OnnxLogits:
    """Callable like a classifier's forward pass, returning logits as a numpy array."""

    def __init__(self, session) -> None:
        self.session = session

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> np.ndarray:
        ids = input_ids.cpu().numpy()
        mask = np.ones_like(ids) if attention_mask is None else attention_mask.cpu().numpy()
        return self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def onnx_logits(model: torch.nn.Module, tokenizer, threads: int | None = None) -> OnnxLogits:
    """Export ``model`` (a sequence classifier on the CPU) and open an ONNX Runtime session for it."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    probe = tokenizer(_PROBE_TEXTS, padding=True, return_tensors="pt", return_token_type_ids=False)
    try:
        graph = _export(model, probe["input_ids"], probe["attention_mask"])
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
    if not np.allclose(expected, actual, atol=1e-4, rtol=1e-4):
        raise ModelError("the ONNX export of this model disagrees with it; use runtime 'torch'")
    return runner


def _export(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with warnings.catch_warnings():  # tracer warnings about shape-dependent Python control flow
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (input_ids, attention_mask),
            buffer,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
            opset_version=_OPSET,
            dynamo=False,  # the TorchScript exporter handles HF encoders without extra packages
        )
    return buffer.getvalue()
