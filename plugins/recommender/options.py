"""The ``[plugins.recommender]`` options; every default runs on a laptop with the sample data."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RankingWeights(BaseModel):
    """Weights of the normalised signals the final ranking adds up (0 switches a signal off).

    The defaults were chosen on citeulike-a (recall@20, zero-shot backbone): co-occurrence
    carries warm items, text and BM25 carry the ones nobody has touched yet.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    text: float = Field(0.5, ge=0, description="cosine of the item to the user's profile vector")
    collaborative: float = Field(1.0, ge=0, description="item-item co-occurrence with the user's history")
    lexical: float = Field(0.5, ge=0, description="BM25 of the item against the user's history text")
    popularity: float = Field(0.05, ge=0, description="log-damped number of interactions")
    freshness: float = Field(0.0, ge=0, description="how new the item is (half-life freshness_half_life_days)")


class TrainingOptions(BaseModel):
    """How ``suite recommender train`` builds bi-encoder pairs and fine-tunes.

    The defaults were chosen on citeulike-a's validation split (5,551 users, 205k
    interactions): every user contributes, a heavy user no more than ``pairs_per_user``
    pairs; an epoch is up to ``max_pairs`` pairs, sampled afresh each epoch, and small enough
    that early stopping on recall@``validation_k`` of held-back items can catch the peak:
    past it the model learns the warm items' co-occurrence and loses recall on unseen items
    (1e-4 over 16,000 pairs fell below the backbone; 2e-5 peaked after 4 epochs of 4,000).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    history_window: int = Field(5, ge=1, description="pairs each chosen item makes with the items just before it")
    pairs_per_user: int = Field(
        40, ge=1, description="pairs sampled from one user's history per epoch, so heavy users do not dominate"
    )
    max_pairs: int = Field(4_000, ge=2, description="cap on the pairs of one epoch (sampled with the seed)")
    epochs: float = Field(
        10.0,
        ge=0,
        description="passes of the transformer over sampled pairs, each sampled afresh (a fraction shortens the "
        "last; 0: only the adapter learns)",
    )
    early_stopping_patience: int = Field(1, ge=0, description="epochs without a better validation recall (0: off)")
    validation_items: float = Field(
        0.05, ge=0, lt=1, description="share of the items held back from training as unseen validation items"
    )
    validation_users: int = Field(300, ge=1, description="users whose held-back items score an epoch")
    validation_k: int = Field(20, ge=1, description="the k of the validation recall@k")
    validation_fraction: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="pairs held back for the engine's pair MRR where no items are (validation_items 0)",
    )
    batch_size: int = Field(32, ge=2)
    learning_rate: float = Field(2e-5, gt=0)
    max_length: int = Field(128, ge=8, description="tokens per item text in training")
    max_steps: int | None = Field(None, ge=1, description="cap on the optimiser steps of one epoch")
    adapter: bool = Field(
        True, description="then fit a linear map on the encoder's item vectors over every user's pairs (adapter.py)"
    )
    adapter_epochs: int = Field(10, ge=1)
    adapter_pairs_per_user: int = Field(500, ge=1, description="pairs per user per adapter epoch")
    adapter_max_pairs: int = Field(1_000_000, ge=2, description="cap on the pairs of one adapter epoch")
    adapter_batch_size: int = Field(256, ge=2)
    adapter_learning_rate: float = Field(
        3e-6, gt=0, description="chosen on citeulike-a validation: larger steps lost recall on unseen items"
    )
    adapter_weight_decay: float = Field(0.01, ge=0, description="pulls the map toward the identity")
    adapter_history_queries: bool = Field(
        False,
        description="adapter: also train served profiles (the mean of the last history_window items) against the "
        "item chosen next, besides item-to-item pairs",
    )
    hard_negatives: bool = Field(
        True, description="adapter: one more negative per pair, a near item the user did not choose, mined each epoch"
    )
    encoder_hard_negatives: bool = Field(
        False,
        description="transformer epochs: each pair also gets a near item its user did not choose, mined from the "
        "current model at the start of the epoch (one catalogue embedding per epoch; not measured at scale yet, "
        "so off by default)",
    )
    seed: int = 42


class RecommenderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    items_file: str | None = Field(None, description="items CSV/JSONL for 'suite train'; default the sample")
    interactions_file: str | None = Field(None, description="interactions CSV/JSONL; default the sample")
    text_template: str = Field(
        "{title}\n{description}\n{tags}",
        description="how an item becomes text: str.format fields title, description, tags and metadata keys; "
        "one part per line, empty lines dropped",
    )
    index: str = Field("recommender-items", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # profile
    history_limit: int = Field(50, ge=1, description="most recent history items used for a profile")
    recency_half_life_days: float | None = Field(
        90.0, gt=0, description="an interaction this much older than the user's latest counts half; None: no decay"
    )
    recency_half_life_items: float | None = Field(
        10.0, gt=0, description="the same by position, for interactions without timestamps"
    )
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "view": 1.0,
            "click": 1.0,
            "like": 2.0,
            "bookmark": 2.0,
            "purchase": 3.0,
            "dislike": 0.0,
        },
        description="profile weight of an interaction by event type (unknown events: 1.0; 0 = seen, not liked)",
    )
    min_rating: float | None = Field(None, description="ratings below this count as seen but not liked")
    profile: Literal["mean", "nearest"] = Field(
        "nearest",
        description="text signal: 'nearest', the weighted mean cosine of each candidate to the profile_neighbours "
        "history items closest to it (keeps a reader's separate interests apart; chosen on citeulike-a's validation "
        "split), or 'mean', its cosine to the weighted mean of the history's vectors",
    )
    profile_neighbours: int = Field(5, ge=1, description="'nearest' profile: history items that score a candidate")
    # ranking
    weights: RankingWeights = Field(default_factory=RankingWeights)
    new_item_boost: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of the collaborative weight that items nobody has interacted with get on their text "
        "match instead (0: new items compete on text alone; 1: text counts double for them)",
    )
    candidates: int = Field(200, ge=10, description="items retrieved per signal before the final ranking")
    collaborative_method: Literal["rp3beta", "cosine"] = Field(
        "rp3beta", description="item-item model of the collaborative signal: rp3beta random walks or cosine item-kNN"
    )
    rp3_beta: float = Field(0.3, ge=0, le=1, description="rp3beta: how much to discount popular items")
    neighbours: int | None = Field(None, ge=1, description="links kept per item in the item-item model (None: all)")
    freshness_half_life_days: float = Field(180.0, gt=0)
    diversity: float = Field(0.0, ge=0, le=1, description="default MMR diversity (0: off; 1 - lambda)")
    explain_top: int = Field(2, ge=0, description="history items named per recommendation")
    default_k: int = Field(10, ge=1, le=1000)
    training: TrainingOptions = Field(default_factory=TrainingOptions)
