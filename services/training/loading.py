"""Which engine serves a saved classifier: its ONNX graph without torch, or torch.

With ``runtime="auto"`` (the default) the graph saved at training time answers where it gives
what torch would (a CPU, float32, no int8), decided without importing torch where possible;
everywhere else :class:`~services.training.inference.TextClassifier` does. On a CPU with native
bfloat16 a server (:func:`set_long_running`) takes torch in bfloat16 instead, and so does a
process that has imported torch already; a one-shot command keeps the graph's fast start.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from pathlib import Path

from services.errors import ConfigError
from services.training.serving import SERVING_GRAPH, Classifier, OnnxClassifier

RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnx")

# Servers and schedulers say so (set_long_running): only they earn back torch's import with bfloat16.
_long_running = False


def set_long_running(value: bool = True) -> None:
    """Mark this process as a server or scheduler: on a CPU with native bfloat16, ``runtime="auto"``
    then serves with torch in bfloat16, whose throughput pays back its seconds of import. A one-shot
    command (the default) keeps the saved graph there too: one request never earns that back."""
    global _long_running
    _long_running = value


def load_classifier(
    path: str | Path,
    *,
    device: str = "auto",
    max_length: int = 128,
    quantize: bool = False,
    runtime: str = "auto",
    precision: str = "auto",
) -> Classifier:
    """A saved classifier, ready to predict: an :class:`OnnxClassifier` on its saved graph where
    that gives the torch model's outputs at least as fast, else a ``TextClassifier``.

    ``runtime="auto"`` takes the saved graph on a CPU in float32 without int8; ``"onnx"``
    takes it whenever it exists (else exports in memory, as ``TextClassifier`` does);
    ``"torch"`` never does.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown inference runtime '{runtime}' (choose {', '.join(RUNTIMES)})")
    if _saved_graph_serves(Path(path), device=device, quantize=quantize, runtime=runtime, precision=precision):
        return OnnxClassifier.from_folder(path, max_length=max_length)
    from services.training.inference import TextClassifier

    return TextClassifier.from_pretrained(
        path,
        device=device,
        max_length=max_length,
        quantize=quantize,
        runtime="onnx" if runtime == "onnx" else "torch",
        precision=precision,
    )


def _saved_graph_serves(folder: Path, *, device: str, quantize: bool, runtime: str, precision: str) -> bool:
    if runtime == "torch" or quantize or not (folder / SERVING_GRAPH).is_file():
        return False
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tokenizers") is None:
        return False
    if runtime == "onnx":
        return True
    if not resolves_to_cpu(device) or precision not in ("float32", "auto"):
        return False
    torch_loaded = sys.modules.get("torch") is not None  # None while spaCy's import refuses it
    return not (prefers_bfloat16(precision) and (_long_running or torch_loaded))


def resolves_to_cpu(device: str) -> bool:
    """Whether ``device`` means the CPU, decided without importing torch where it can be."""
    if device == "cpu":
        return True
    if device != "auto":
        return False
    if "torch" in sys.modules:  # already paid for: ask torch itself
        from services.training.folders import resolve_device

        return resolve_device("auto").type == "cpu"
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return False  # torch would pick the Apple GPU (mps)
    return _torch_is_cpu_build() or not Path("/dev/nvidiactl").exists()


def _torch_is_cpu_build() -> bool:
    try:
        return "+cpu" in importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return True


def prefers_bfloat16(precision: str) -> bool:
    """``precision="auto"`` means bfloat16 on a CPU with native bfloat16 arithmetic (see inference.py)."""
    if precision != "auto":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags
