"""HTTP routes under ``/api/recommender`` (JSON). Endpoints are sync: model calls run in the thread pool."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from plugins.recommender.data import Item
from plugins.recommender.service import MAX_K, get_recommender, parse_filters
from suite.http.limits import SqlInt, check_text

if TYPE_CHECKING:
    from suite.context import SuiteContext


class BecauseOut(BaseModel):
    item: str
    title: str
    similarity: float


class RecommendationOut(BaseModel):
    item: str
    title: str
    score: float
    signals: dict[str, float] = Field(description="share of the score each signal gave")
    because: list[BecauseOut] = Field(description="history items this recommendation is closest to")
    tags: list[str]
    metadata: dict[str, Any]


class RecommendationsOut(BaseModel):
    user: str | None
    recommendations: list[RecommendationOut]


class NewUserRequest(BaseModel):
    liked_items: list[str] = Field(default_factory=list, max_length=200)
    interests: str | None = None
    k: int = Field(10, ge=1, le=MAX_K)
    diversity: float | None = Field(None, ge=0, le=1)
    filters: dict[str, Any] | None = None


class ItemIn(BaseModel):
    id: str
    title: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


class ItemOut(ItemIn):
    popularity: int | None = None


class InteractionIn(BaseModel):
    user: str
    item: str
    timestamp: str | float | None = None
    event: str | None = None
    rating: float | None = None


class InteractionsIn(BaseModel):
    interactions: list[InteractionIn] = Field(min_length=1, max_length=10_000)


class CountOut(BaseModel):
    added: int
    skipped: int


class SearchHitOut(BaseModel):
    item: str
    title: str
    score: float
    tags: list[str]
    metadata: dict[str, Any]


class UserOut(BaseModel):
    user: str
    items: int


def _filters(values: list[str] | None) -> dict[str, Any] | None:
    return parse_filters(values or ()) or None


def _item_out(item: Item) -> ItemOut:
    return ItemOut(
        id=item.id,
        title=item.title,
        description=item.description,
        tags=item.tags,
        metadata=item.metadata,
        # Stored as naive UTC; say so, as RFC 3339 date-times (the schema's format) must.
        created_at=item.created_at.replace(tzinfo=timezone.utc) if item.created_at else None,
    )


def build_router(ctx: SuiteContext) -> APIRouter:
    router = APIRouter(prefix="/api/recommender", tags=["recommender"])

    def recommender():
        return get_recommender(ctx)

    @router.get("/users/{user}/recommendations", response_model=RecommendationsOut)
    def user_recommendations(
        user: str,
        k: int = Query(10, ge=1, le=MAX_K),
        diversity: float | None = Query(None, ge=0, le=1),
        filters: list[str] | None = Query(None, alias="filter", description="metadata key=value, repeatable"),
    ) -> RecommendationsOut:
        """Unseen items for a user with history."""
        items = recommender().recommend(user, k, diversity=diversity, filters=_filters(filters))
        return RecommendationsOut(user=user, recommendations=[r.to_dict() for r in items])

    @router.post("/recommendations", response_model=RecommendationsOut)
    def new_user_recommendations(request: NewUserRequest) -> RecommendationsOut:
        """Recommendations for someone without history: liked items and/or a description of interests."""
        interests = check_text(request.interests) if request.interests is not None else None
        items = recommender().recommend(
            None,
            request.k,
            like=request.liked_items,
            interests=interests,
            filters=request.filters,
            diversity=request.diversity,
        )
        return RecommendationsOut(user=None, recommendations=[r.to_dict() for r in items])

    @router.get("/items/{item_id}", response_model=ItemOut)
    def get_item(item_id: str) -> ItemOut:
        return _item_out(recommender().item(item_id))

    @router.get("/items/{item_id}/similar", response_model=list[RecommendationOut])
    def similar_items(
        item_id: str,
        k: int = Query(10, ge=1, le=MAX_K),
        filters: list[str] | None = Query(None, alias="filter", description="metadata key=value, repeatable"),
    ) -> list[RecommendationOut]:
        return [r.to_dict() for r in recommender().similar(item_id, k, filters=_filters(filters))]

    @router.get("/search", response_model=list[SearchHitOut])
    def search(
        q: str,
        k: int = Query(10, ge=1, le=MAX_K),
        mode: str = Query("hybrid", pattern="^(bm25|vector|hybrid)$"),
        filters: list[str] | None = Query(None, alias="filter", description="metadata key=value, repeatable"),
    ) -> list[SearchHitOut]:
        results = recommender().search(check_text(q), k, filters=_filters(filters), mode=mode)
        return [SearchHitOut(**vars(r)) for r in results]

    @router.post("/items", response_model=ItemOut, status_code=201)
    def add_item(item: ItemIn, replace: bool = False) -> ItemOut:
        """Add (or with ``replace`` update) an item: embedded from its text, recommendable at once."""
        for text in (item.title, item.description):
            if text:
                check_text(text)
        stored = recommender().add_item(
            Item(item.id, item.title, item.description, item.tags, item.metadata, item.created_at), replace=replace
        )
        return _item_out(stored)

    @router.delete("/items/{item_id}")
    def remove_item(item_id: str) -> dict[str, Any]:
        removed = recommender().remove_item(item_id)
        return {"removed": item_id, "interactions_removed": removed}

    @router.post("/interactions", response_model=CountOut, status_code=201)
    def add_interactions(body: InteractionsIn) -> CountOut:
        """Record interactions (all or nothing); exact repeats of stored ones are skipped."""
        added, skipped = recommender().add_interactions([i.model_dump() for i in body.interactions])
        return CountOut(added=added, skipped=skipped)

    @router.get("/users", response_model=list[UserOut])
    def users(limit: int = Query(50, ge=1, le=1000), offset: Annotated[SqlInt, Query(ge=0)] = 0) -> list[UserOut]:
        """Users with the most history first (for a picker)."""
        return [UserOut(user=u, items=n) for u, n in recommender().users(limit, offset)]

    return router
