"""The SQLite vector cache: hits skip the model, a changed model misses, two processes share it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from embedding_samples import SENTENCES

from services.embeddings import CACHE_FILE, Embedder, VectorCache

ROOT = Path(__file__).resolve().parents[2]


class ForwardCounter:
    """Counts real forward passes of a loaded model, through whichever path it runs (eager or traced)."""

    def __init__(self, embedder: Embedder) -> None:
        self.calls = 0
        encoder = embedder._encoder()

        def counted(*args: object) -> object:
            self.calls += 1
            return encoder(*args)

        embedder._fast = counted


def test_cache_hits_return_identical_vectors_without_the_model(model_path: str, tmp_path: Path) -> None:
    first = Embedder(model_path, batch_size=4, cache_dir=tmp_path, device="cpu")
    counter = ForwardCounter(first)
    computed = first.encode(SENTENCES)
    assert counter.calls == first.stats.batches == 3 and first.stats.cache_hits == 0

    assert np.array_equal(first.encode(SENTENCES[::-1]), computed[::-1])  # same object: hits only
    assert counter.calls == 3 and first.stats.cache_hits == len(SENTENCES)

    second = Embedder(model_path, batch_size=4, cache_dir=tmp_path, device="cpu")  # as a new process would
    assert np.array_equal(second.encode(SENTENCES), computed)
    assert second.stats.batches == 0 and not second.is_loaded

    mixed = second.encode([SENTENCES[2], "a sentence never seen before"])
    assert np.array_equal(mixed[0], computed[2])
    assert second.stats.encoded == 1 and second.stats.cache_hits == len(SENTENCES) + 1


def test_max_length_is_part_of_the_key(model_path: str, tmp_path: Path) -> None:
    long_text = SENTENCES[-1]
    full = Embedder(model_path, cache_dir=tmp_path, device="cpu").encode([long_text])
    short = Embedder(model_path, cache_dir=tmp_path, max_length=16, device="cpu")
    truncated = short.encode([long_text])
    assert short.stats.encoded == 1 and not np.allclose(full, truncated)


@pytest.mark.slow
def test_retrained_model_at_the_same_path_invalidates_the_cache(model_path: str, tmp_path: Path) -> None:
    from transformers import AutoModel

    folder = tmp_path / "model"
    shutil.copytree(model_path, folder)
    cache = tmp_path / "cache"
    texts = SENTENCES[1:6]
    before = Embedder(str(folder), cache_dir=cache, device="cpu").encode(texts)

    model = AutoModel.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(1.5)  # a "re-trained" model, saved over the old one
    model.save_pretrained(folder)

    after_embedder = Embedder(str(folder), cache_dir=cache, device="cpu")
    after = after_embedder.encode(texts)
    assert after_embedder.stats.cache_hits == 0 and after_embedder.stats.encoded == len(texts)
    assert not np.allclose(before, after, atol=1e-3)
    np.testing.assert_allclose(after, Embedder(str(folder), device="cpu").encode(texts), atol=1e-6, rtol=0)


def test_unusable_cache_file_falls_back_to_computing(model_path: str, tmp_path: Path) -> None:
    (tmp_path / CACHE_FILE).write_bytes(b"this is not an SQLite database" * 100)
    embedder = Embedder(model_path, cache_dir=tmp_path, device="cpu")
    assert embedder.encode(["still works"]).shape == (1, 384)


def test_vectors_of_the_wrong_size_are_misses(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / CACHE_FILE)
    cache.put_many([(b"k" * 32, np.ones(8, dtype=np.float32))])
    assert cache.get_many([b"k" * 32], dimension=8)[b"k" * 32].tolist() == [1.0] * 8
    assert cache.get_many([b"k" * 32], dimension=384) == {}
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0


WRITER = """
import sys
import numpy as np
from pathlib import Path
from services.embeddings import VectorCache

cache = VectorCache(Path(sys.argv[1]))
tag = sys.argv[2].encode()
for batch in range(40):
    keys = [tag + batch.to_bytes(2, "big") + i.to_bytes(2, "big") for i in range(25)]
    items = [(key, np.full(16, batch, np.float32)) for key in keys]
    cache.put_many(items)
    found = cache.get_many([key for key, _ in items], 16)
    assert len(found) == 25, f"lost writes in batch {batch}"
"""


def test_two_processes_share_one_cache_file(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag], env=env, stderr=subprocess.PIPE, text=True)
        for tag in ("a", "b")
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    cache = VectorCache(path)
    assert len(cache) == 2 * 40 * 25
    assert cache._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
