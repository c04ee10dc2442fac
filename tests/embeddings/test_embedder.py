"""Embedder against sentence-transformers, order, input checks, errors, threads."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from embedding_samples import SENTENCES

from services.embeddings import Embedder
from suite.errors import ConfigError, ModelError


@pytest.mark.slow
def test_vectors_equal_sentence_transformers(embedder: Embedder, model_path: str) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_path), device="cpu").encode(
        SENTENCES, normalize_embeddings=True, batch_size=5
    )
    vectors = embedder.encode(SENTENCES)
    assert vectors.dtype == np.float32 and vectors.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(vectors, reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_order_is_restored_after_length_sorting(embedder: Embedder) -> None:
    one_by_one = np.stack([embedder.encode_one(text) for text in SENTENCES[:8]])
    shuffled = list(range(8))
    random.Random(3).shuffle(shuffled)
    batched = embedder.encode([SENTENCES[i] for i in shuffled], batch_size=3)
    np.testing.assert_allclose(batched, one_by_one[shuffled], atol=1e-5, rtol=0)
    different = [float(batched[0] @ batched[i]) for i in range(1, 8)]
    assert max(different) < 0.999  # distinct texts, distinct vectors: a mix-up would show


def test_duplicates_are_encoded_once(embedder: Embedder) -> None:
    before = embedder.stats.encoded
    vectors = embedder.encode(["same text", "other", "same text", "same text"])
    assert embedder.stats.encoded - before == 2
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_empty_input_gives_an_empty_matrix(model_path: str) -> None:
    fresh = Embedder(model_path, device="cpu")
    result = fresh.encode([])
    assert result.shape == (0, 384) and result.dtype == np.float32
    assert not fresh.is_loaded  # no reason to load weights for nothing


def test_input_must_be_a_sequence_of_str(embedder: Embedder) -> None:
    with pytest.raises(TypeError, match="encode_one"):
        embedder.encode("a single string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str texts"):
        embedder.encode(["fine", 42])  # type: ignore[list-item]
    assert embedder.encode_one("hello").shape == (384,)


def test_concurrent_encodes_agree_with_sequential(embedder: Embedder) -> None:
    groups = [SENTENCES[i : i + 3] for i in range(0, 9, 3)]
    expected = [embedder.encode(group) for group in groups]
    results: dict[int, np.ndarray] = {}

    def run(index: int) -> None:
        results[index] = embedder.encode(groups[index % 3], batch_size=2)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, vectors in results.items():
        np.testing.assert_allclose(vectors, expected[index % 3], atol=1e-5, rtol=0)


def test_missing_or_invalid_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model folder"):
        Embedder(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="no config.json"):
        Embedder(str(tmp_path))
    with pytest.raises(ModelError, match="downloads are off"):
        Embedder("someone/not-a-cached-model")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_config_error(model_path: str) -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Embedder(model_path, device="cuda").encode(["x"])


def test_auto_device_is_cpu_without_cuda(embedder: Embedder, model_path: str) -> None:
    assert embedder.device == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Embedder(model_path, device="auto").device.startswith(expected)
