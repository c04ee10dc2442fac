"""The recommender with a real fine-tuned bi-encoder on the sample data: library, CLI and HTTP."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from plugins.recommender.data import Item
from plugins.recommender.service import get_recommender
from suite.errors import DataError, NotFoundError

pytestmark = pytest.mark.slow

# Sample users and the category most of their history comes from.
TASTES = {
    "ada": "machine-learning",
    "ben": "astronomy",
    "chloe": "cooking",
    "dev": "cycling",
    "emma": "personal-finance",
}


def category(recommender, item_id: str) -> str:
    return recommender.item(item_id).metadata["category"]


def test_training_registers_the_biencoder_and_reembeds(trained):
    ctx, version = trained
    assert version.ref == "recommender/biencoder@v1"
    assert version.card.kind == "biencoder" and version.card.train_examples > 0
    assert ctx.registry.active("recommender", "biencoder").ref == version.ref
    stats = get_recommender(ctx).stats()
    assert stats["index_model"] == version.ref == stats["active_model"]
    assert stats["items"] == 80 and stats["users"] == 30
    metrics = version.card.metrics
    # Every epoch was scored on items held back from training; the best one (or the backbone) was kept.
    assert len(metrics["epochs"]) >= 1 and all(0 <= epoch["recall"] <= 1 for epoch in metrics["epochs"])
    recalls = [metrics["zero_shot_recall@20"]] + [epoch["recall"] for epoch in metrics["epochs"]]
    assert metrics["validation_recall@20"] == max(recalls)
    assert recalls[metrics["best_epoch"]] == max(recalls) and metrics["pairs_per_second"] > 0


def test_epochs_scored_on_recall_keep_the_weights_they_trained(context_factory, monkeypatch):
    """Held-out pairs would make the engine keep an epoch's starting weights whenever their pair
    MRR did not rise, whatever the recall: with a recall split the epochs run without them."""
    from plugins.recommender.training import train_and_register

    def held_out_pairs_of_each_epoch(**training) -> list:
        context = context_factory(
            training={"max_steps": 2, "batch_size": 8, "max_pairs": 64, "adapter": False, **training}
        )
        real, held = context.trainer.train_biencoder, []
        monkeypatch.setattr(context.trainer, "train_biencoder", lambda *a, **k: held.append(a[2]) or real(*a, **k))
        version = train_and_register(context, {}, progress=False)
        assert len(held) == len(version.card.metrics["epochs"])
        return held

    assert all(pairs is None for pairs in held_out_pairs_of_each_epoch(epochs=2))
    # Without a recall split (validation_items 0) the engine's pair MRR is the only guard left.
    assert all(pairs for pairs in held_out_pairs_of_each_epoch(epochs=1, validation_items=0))


def test_tuned_blend_weights_are_kept_on_the_card_and_served(trained):
    from typer.testing import CliRunner

    from plugins.recommender.options import RankingWeights
    from suite.cli import build_app

    ctx, version = trained
    recommender = get_recommender(ctx)
    result = CliRunner().invoke(build_app(ctx), ["recommender", "evaluate", "--tune", "-k", "10", "--json"])
    assert result.exit_code == 0, result.output
    card = ctx.registry.get("recommender", "biencoder", version.version).card
    tuned = RankingWeights.model_validate(card.metrics["blend_weights"])
    details = card.metrics["blend_tuning"]
    assert details["validation_recall@10"] >= details["start_recall@10"]
    ctx.registry.verify(ctx.registry.get("recommender", "biencoder", version.version))  # weights untouched
    assert recommender.serving_weights() == tuned
    configured = RankingWeights(text=1, collaborative=0, lexical=0, popularity=0, freshness=0)
    recommender.options = recommender.options.model_copy(update={"weights": configured})
    recommender.options.model_fields_set.add("weights")  # as when the config file sets them
    try:
        assert recommender.serving_weights() == configured
    finally:
        recommender.options = ctx.plugin_options("recommender")


@pytest.mark.parametrize("user", sorted(TASTES))
def test_recommendations_are_unseen_and_match_the_users_taste(trained, user):
    ctx, _ = trained
    recommender = get_recommender(ctx)
    history = {h.item for h in recommender.store.history(user)}
    majority = Counter(category(recommender, item) for item in history).most_common(1)[0][0]
    assert majority == TASTES[user]
    recommendations = recommender.recommend(user, 5)
    assert len(recommendations) == 5
    assert not {r.item for r in recommendations} & history
    assert sum(r.metadata["category"] == majority for r in recommendations) >= 4
    for r in recommendations:  # explanations name history items and add up
        assert len(r.because) == 2 and {b.item for b in r.because} <= history
        assert r.because[0].similarity >= r.because[1].similarity
        assert sum(r.signals.values()) == pytest.approx(1.0, abs=0.01)
        assert r.signals.get("text", 0) > 0


def test_new_item_is_recommendable_at_once_and_removable(trained):
    ctx, _ = trained
    recommender = get_recommender(ctx)
    versions = len(ctx.registry.list("recommender"))
    new = Item(
        "transformer-embeddings-for-recommendation",
        title="Transformer embeddings for recommending articles",
        description="Fine-tuning sentence embeddings with contrastive learning so that similar articles sit close.",
        tags=["embeddings", "transformers", "recommender systems", "deep learning"],
        metadata={"category": "machine-learning"},
    )
    recommender.add_item(new)
    assert len(ctx.registry.list("recommender")) == versions  # no retraining
    assert new.id in [r.item for r in recommender.recommend("ada", 10)]
    assert new.id in [r.item for r in recommender.similar("contrastive-learning-primer", 10)]
    assert new.id in [r.item for r in recommender.search("contrastive embeddings for recommendation", 3)]

    recommender.remove_item(new.id)
    assert new.id not in [r.item for r in recommender.recommend("ada", 20)]
    assert new.id not in [r.item for r in recommender.search("contrastive embeddings for recommendation", 10)]
    with pytest.raises(NotFoundError):
        recommender.item(new.id)


def test_new_user_from_interests_or_liked_items(trained):
    ctx, _ = trained
    recommender = get_recommender(ctx)
    by_interests = recommender.recommend(interests="telescopes, galaxies and black holes", k=5)
    assert sum(r.metadata["category"] == "astronomy" for r in by_interests) >= 4
    liked = ["sourdough-starter", "homemade-pasta"]
    by_likes = recommender.recommend(like=liked, k=5)
    assert not {r.item for r in by_likes} & set(liked)
    assert sum(r.metadata["category"] == "cooking" for r in by_likes) >= 4
    assert all({b.item for b in r.because} <= set(liked) for r in by_likes)


def test_similar_items_search_and_filters(trained):
    ctx, _ = trained
    recommender = get_recommender(ctx)
    similar = recommender.similar("gravitational-waves", 5)
    assert "gravitational-waves" not in [r.item for r in similar]
    assert sum(r.metadata["category"] == "astronomy" for r in similar) >= 4
    assert recommender.search("bread dough baking", 3)[0].metadata["category"] == "cooking"
    filtered = recommender.recommend("ada", 5, filters={"category": "cycling"})
    assert len(filtered) == 5 and {r.metadata["category"] for r in filtered} == {"cycling"}


def test_diversity_reranking_spreads_the_list(trained):
    ctx, _ = trained
    recommender = get_recommender(ctx)

    def mean_similarity(recommendations) -> float:
        vectors = recommender.index.vectors([r.item for r in recommendations])
        sims = vectors @ vectors.T
        return float(sims[np.triu_indices(len(vectors), 1)].mean())

    plain = recommender.recommend("ben", 6)
    diverse = recommender.recommend("ben", 6, diversity=0.8)
    assert [r.item for r in plain] != [r.item for r in diverse]
    assert diverse[0].item == plain[0].item  # the best item stays first
    assert mean_similarity(diverse) < mean_similarity(plain)


def test_bad_requests_are_one_line_errors(trained):
    ctx, _ = trained
    recommender = get_recommender(ctx)
    with pytest.raises(NotFoundError, match="unknown user 'nobody'"):
        recommender.recommend("nobody")
    with pytest.raises(NotFoundError, match="unknown item"):
        recommender.similar("no-such-item")
    with pytest.raises(NotFoundError, match="unknown item"):
        recommender.recommend(like=["no-such-item"])
    with pytest.raises(DataError, match="k must be"):
        recommender.recommend("ada", 0)
    with pytest.raises(DataError, match="search text is empty"):
        recommender.search("   ")
    with pytest.raises(DataError, match="say who"):
        recommender.recommend(None, interests="  ")
    with pytest.raises(DataError, match="no text"):
        recommender.add_item(Item("empty-item"))
    with pytest.raises(DataError, match="already exist"):
        recommender.add_item(Item("attention-explained", title="again"))


def test_model_change_triggers_reembedding(trained):
    ctx, version = trained
    recommender = get_recommender(ctx)
    recommender.store.set_state("index_model", "recommender/biencoder@v0")
    assert recommender.index.ensure_current() is True
    assert recommender.store.get_state("index_model") == version.ref
    assert recommender.index.ensure_current() is False


def test_cli_commands(trained):
    from suite.cli import build_app

    ctx, _ = trained
    runner = CliRunner()
    app = build_app(ctx)

    result = runner.invoke(app, ["recommend", "chloe", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    recommendations = json.loads(result.output)
    assert len(recommendations) == 3 and recommendations[0]["because"]

    result = runner.invoke(app, ["recommend", "--interests", "saving money and index funds", "-k", "3"])
    assert result.exit_code == 0 and "for a new user" in result.output

    result = runner.invoke(app, ["recommender", "similar", "chain-maintenance", "-k", "3", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.output)) == 3

    result = runner.invoke(app, ["recommender", "search", "mortgage", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)[0]["item"] == "mortgage-fixed-variable"

    result = runner.invoke(
        app,
        [
            "recommender",
            "add-item",
            "--id",
            "cli-item",
            "--title",
            "Track cycling velodromes",
            "--tags",
            "cycling;track",
            "--meta",
            "category=cycling",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["recommender", "remove-item", "cli-item"])
    assert result.exit_code == 0 and "removed cli-item" in result.output

    result = runner.invoke(app, ["recommender", "stats", "--json"])
    assert json.loads(result.output)["items"] == 80

    result = runner.invoke(app, ["recommender", "evaluate", "--k", "10", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"recommender", "most-popular", "item-knn", "bm25"}
    assert report["recommender"]["recall@10"] > report["most-popular"]["recall@10"]

    result = runner.invoke(app, ["recommend", "nobody"])
    assert result.exit_code != 0 and isinstance(result.exception, NotFoundError)


def test_http_routes(trained):
    from suite.app import create_app

    ctx, _ = trained
    client = TestClient(create_app(ctx))
    base = "/api/recommender"

    response = client.get(f"{base}/users/dev/recommendations", params={"k": 4, "diversity": 0.3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == "dev" and len(body["recommendations"]) == 4
    assert body["recommendations"][0]["because"][0]["title"]

    response = client.post(f"{base}/recommendations", json={"interests": "bike maintenance and tyres", "k": 3})
    assert response.status_code == 200
    assert {r["metadata"]["category"] for r in response.json()["recommendations"]} == {"cycling"}

    assert client.get(f"{base}/items/attention-explained").json()["title"].startswith("Attention")
    assert len(client.get(f"{base}/items/attention-explained/similar", params={"k": 2}).json()) == 2
    assert client.get(f"{base}/search", params={"q": "exoplanets"}).json()[0]["item"] == "exoplanet-transits"

    item = {
        "id": "http-item",
        "title": "Comet tails and the solar wind",
        "tags": ["comets"],
        "metadata": {"category": "astronomy"},
    }
    assert client.post(f"{base}/items", json=item).status_code == 201
    response = client.post(
        f"{base}/interactions",
        json={"interactions": [{"user": "newcomer", "item": "http-item", "timestamp": "2025-06-01T10:00:00"}]},
    )
    assert response.json() == {"added": 1, "skipped": 0}
    assert client.get(f"{base}/users/newcomer/recommendations", params={"k": 3}).status_code == 200
    assert any(u["user"] == "newcomer" for u in client.get(f"{base}/users", params={"limit": 100}).json())
    assert client.delete(f"{base}/items/http-item").json() == {"removed": "http-item", "interactions_removed": 1}

    assert client.get(f"{base}/users/nobody/recommendations").status_code == 404
    assert client.get(f"{base}/items/http-item").status_code == 404
    assert client.post(f"{base}/items", json={"id": "blank"}).status_code == 422
    response = client.post(f"{base}/interactions", json={"interactions": [{"user": "u", "item": "ghost"}]})
    assert response.status_code == 422 and "unknown item 'ghost'" in response.json()["error"]["message"]
