"""The linear adapter: it learns co-consumption the raw vectors miss, and serves as a Dense module."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from plugins.recommender.adapter import adapt, mine_hard_negatives, save_adapter, train_adapter
from plugins.recommender.options import TrainingOptions


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("history_queries", [False, True])
def test_adapter_pulls_together_what_users_read_together(history_queries):
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(40, 16)))
    # Users read item i with item i + 20: unrelated in the raw space.
    histories = {f"u{n}-{r}": [n, n + 20] for n in range(20) for r in range(3)}
    options = TrainingOptions(
        adapter_epochs=30,
        adapter_batch_size=16,
        adapter_learning_rate=0.05,
        hard_negatives=True,
        adapter_history_queries=history_queries,
    )
    result = train_adapter(vectors, histories, options, progress=False)
    assert result.weight is not None and len(result.epochs) == 30 and result.pairs_per_second > 0
    before = (vectors[:20] * vectors[20:]).sum(axis=1).mean()
    mapped = adapt(vectors, result.weight)
    after = (mapped[:20] * mapped[20:]).sum(axis=1).mean()
    assert after > before + 0.3
    ranks = [int((mapped[n] @ mapped.T > mapped[n] @ mapped[n + 20]).sum()) for n in range(20)]
    assert np.mean(ranks) < 3  # the partner is (nearly) the nearest item after itself


def test_hard_negatives_are_near_and_unchosen():
    vectors = unit(np.eye(6, dtype=np.float32) + 0.5)
    triples = np.asarray([[0, 0, 1], [1, 2, 3]])
    seen = [{0, 1, 2}, {2, 3}]
    negatives = mine_hard_negatives(vectors, triples, seen, np.random.default_rng(0))
    assert negatives[0] not in seen[0] and negatives[1] not in seen[1]
    assert set(negatives.tolist()) <= {3, 4, 5, 0, 1}


def test_saved_adapter_is_applied_by_the_embedder_and_sentence_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer

    from services.backbone import resolve_backbone
    from services.embeddings import Embedder

    backbone = resolve_backbone("default")
    folder = tmp_path / "model"
    shutil.copytree(backbone, folder)
    weight = np.eye(384, dtype=np.float32) + np.random.default_rng(1).normal(0, 0.05, (384, 384)).astype(np.float32)
    save_adapter(folder, weight)
    texts = ["sourdough starter", "black holes and galaxies", "index funds"]
    plain = Embedder(backbone, device="cpu").encode(texts)
    ours = Embedder(str(folder), device="cpu").encode(texts)
    assert np.allclose(ours, adapt(plain, weight), atol=1e-4)
    assert not np.allclose(ours, plain, atol=1e-2)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.allclose(ours, theirs, atol=1e-4)
    # The ONNX graph saved by a first embedder serves the next one with the Dense map applied too.
    Embedder(str(folder), device="cpu", cache_dir=tmp_path / "cache").encode(texts[:1])
    cold = Embedder(str(folder), device="cpu", cache_dir=tmp_path / "cache")
    assert np.allclose(cold.encode(texts), ours, atol=1e-5) and not cold.is_loaded


@pytest.mark.slow
def test_adapter_only_training_is_registered_and_served(context_factory):
    """epochs = 0: the transformer stays the backbone, the adapter learns; the index serves its vectors."""
    from plugins.recommender.service import get_recommender
    from plugins.recommender.training import train_and_register
    from services.embeddings import read_dense

    ctx = context_factory(training={"epochs": 0, "adapter_epochs": 2, "validation_items": 0.1})
    version = train_and_register(ctx, {}, progress=False)
    metrics = version.card.metrics
    assert len(metrics["adapter_epochs"]) >= 1 and metrics["adapter_pairs_per_second"] > 0
    assert metrics["encoder_recall@20"] is not None
    assert metrics["validation_recall@20"] >= metrics["encoder_recall@20"]
    recommender = get_recommender(ctx)
    item = next(recommender.store.iter_items())
    served = recommender.index.vectors([item.id])[0]
    plain = ctx.embedder(ctx.backbone("recommender")).encode([recommender.item_texts()[item.id]])
    weight = read_dense(version.path)
    expected = adapt(plain, weight)[0] if metrics["adapter_used"] else plain[0]
    assert (weight is not None) == metrics["adapter_used"]
    assert float(served @ expected) > 0.999


def test_catalogue_embedding_precisions_agree_and_never_share_cache_entries(tmp_path):
    from services.backbone import resolve_backbone
    from services.embeddings import Embedder

    backbone = resolve_backbone("default")
    texts = ["machine learning, neural networks", "", "cycling, track, velodrome " * 40]
    exact = Embedder(backbone, device="cpu", cache_dir=tmp_path).encode(texts)
    fast = Embedder(backbone, device="cpu", cache_dir=tmp_path, precision="bfloat16")
    vectors = fast.encode(texts)
    assert fast.stats.cache_hits == 0 and fast.stats.encoded == 3  # float32 vectors are not reused
    assert np.all((vectors * exact).sum(axis=1) > 0.99)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
