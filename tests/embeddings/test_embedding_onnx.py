"""The encoder's ONNX graph: saved in the cache folder by the first embedder that runs torch, then
used by the next ones (new processes) with the same vectors and without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from embedding_samples import SENTENCES

from services.embeddings import Embedder, graph_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def saved_graph(model_path: str, tmp_path: Path) -> Path:
    first = Embedder(model_path, cache_dir=tmp_path, device="cpu")
    first.encode(["one text, so that torch runs once"])
    assert first.is_loaded and graph_path(tmp_path, first.model_id).is_file()
    return tmp_path


@pytest.mark.parametrize("max_length", [256, 16])  # 16: the longer sentences are truncated
def test_a_new_embedder_uses_the_graph_and_gives_the_torch_vectors(
    model_path: str, saved_graph: Path, max_length: int
) -> None:
    exact = Embedder(model_path, device="cpu", max_length=max_length, batch_size=4).encode(SENTENCES)
    cold = Embedder(model_path, cache_dir=saved_graph, device="cpu", max_length=max_length, batch_size=4)
    vectors = cold.encode(SENTENCES)
    assert not cold.is_loaded and cold.stats.encoded == len(SENTENCES) and cold.stats.batches == 3
    np.testing.assert_allclose(vectors, exact, atol=1e-5)


def test_bfloat16_and_other_devices_keep_the_torch_path(model_path: str, saved_graph: Path) -> None:
    fast = Embedder(model_path, cache_dir=saved_graph, device="cpu", precision="bfloat16")
    fast.encode(["a sentence for bfloat16"])
    assert fast.is_loaded  # the float32 graph would not give bfloat16's vectors (nor share their cache)


def test_a_cold_process_embeds_without_importing_torch(model_path: str, saved_graph: Path) -> None:
    script = (
        "import sys\n"
        "from services.embeddings import Embedder\n"
        f"embedder = Embedder({model_path!r}, cache_dir={str(saved_graph)!r})\n"
        "print(embedder.encode(['a question no process has asked before']).shape)\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["(1, 384)", "[]"]
