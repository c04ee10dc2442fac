"""HTTP routes under ``/api/sentiment``: scoring, entity stats and charts, alerts, documents, runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from plugins.sentiment.options import parse_duration
from suite.errors import DataError
from suite.http.limits import SqlInt

if TYPE_CHECKING:
    from plugins.sentiment.monitor import Monitor
    from suite.context import SuiteContext

MAX_BUCKETS = 5_000
DeliveryStatus = Literal["pending", "failed", "sent", "given_up"]


class ScoreRequest(BaseModel):
    texts: list[str] = Field(description="texts to score")


class ScoreResult(BaseModel):
    label: str
    score: float = Field(description="P(positive) - P(negative)")
    probabilities: dict[str, float]


class ScoreResponse(BaseModel):
    model: str
    results: list[ScoreResult]


class AckRequest(BaseModel):
    by: str | None = Field(None, max_length=200, description="who acknowledges")


def _bucket(value: str) -> timedelta:
    parsed = parse_duration(value)
    if not isinstance(parsed, timedelta) or parsed <= timedelta(0):
        raise DataError(f"bucket: expected a duration like 1h, 30m or 1d, got {value!r}")
    return parsed


def build_router(ctx: SuiteContext) -> APIRouter:
    router = APIRouter(prefix="/api/sentiment", tags=["sentiment"])

    def monitor() -> Monitor:
        from plugins.sentiment.monitor import monitor_for

        return monitor_for(ctx)

    @router.post("/score", response_model=ScoreResponse)
    def score(request: ScoreRequest) -> ScoreResponse:
        """Score texts with the active sentiment model."""
        from plugins.sentiment.model import PLUGIN, SENTIMENT_TASK, score_texts
        from suite.http.limits import check_texts

        texts = check_texts(request.texts)
        results = score_texts(ctx, texts)
        version = ctx.registry.active(PLUGIN, SENTIMENT_TASK)
        return ScoreResponse(
            model=version.ref if version else "",
            results=[ScoreResult(label=r.label, score=r.score, probabilities=r.probabilities) for r in results],
        )

    @router.get("/entities")
    def entities() -> list[dict[str, Any]]:
        """The watchlist with each entity's current window against its baseline."""
        m = monitor()
        stats = {c.subject.entity: c for c in m.comparisons()}
        return [
            {"name": e.name, "ticker": e.ticker, "aliases": e.aliases, **stats[e.name].to_dict()}
            for e in m.options.watchlist
        ]

    @router.get("/topics")
    def topics() -> list[dict[str, Any]]:
        """Every topic's current window against its baseline, over all documents."""
        return [c.to_dict() for c in monitor().comparisons(by="topic")]

    def points(name: str, bucket: str, days: float) -> tuple[str, list]:
        m = monitor()
        entity, size = m.resolve_entity(name), _bucket(bucket)
        if timedelta(days=days) / size > MAX_BUCKETS:
            raise DataError(f"too many buckets: {days:g} days of {bucket} (at most {MAX_BUCKETS})")
        now = datetime.now(UTC)
        return entity, m.series(entity, start=now - timedelta(days=days), end=now, bucket=size)

    @router.get("/entities/{name}/series")
    def series(
        name: str,
        bucket: str = Query("1h", description="bucket size: 30m, 1h, 1d..."),
        days: float = Query(7.0, gt=0, le=366),
    ) -> dict[str, Any]:
        """Volume, mean score and negative share per bucket over the last ``days``."""
        entity, found = points(name, bucket, days)
        return {"entity": entity, "bucket": bucket, "series": [p.to_dict() for p in found]}

    @router.get("/entities/{name}/chart.png", response_class=Response)
    def chart(name: str, bucket: str = Query("1h"), days: float = Query(7.0, gt=0, le=366)) -> Response:
        """The report chart as PNG: mean score (line) and volume (bars) per bucket."""
        from plugins.sentiment.report import render_chart

        entity, found = points(name, bucket, days)
        png = render_chart(found, f"{entity}: sentiment and volume, last {days:g} days")
        return Response(content=png, media_type="image/png")

    @router.get("/alerts")
    def alerts(
        include_all: bool = Query(False, alias="all", description="include acknowledged alerts"),
        entity: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        """Open alerts, newest first; ``all=true`` adds the acknowledged ones."""
        m = monitor()
        name = m.resolve_entity(entity) if entity else None
        return m.alert_dicts(m.store.alerts(include_acknowledged=include_all, limit=limit, entity=name))

    @router.get("/alerts/{alert_id}")
    def alert(alert_id: SqlInt) -> dict[str, Any]:
        m = monitor()
        return m.alert_dicts([m.store.alert(alert_id)])[0]

    @router.post("/alerts/{alert_id}/ack")
    def acknowledge(alert_id: SqlInt, request: AckRequest | None = None) -> dict[str, Any]:
        m = monitor()
        return m.alert_dicts([m.store.acknowledge(alert_id, request.by if request else None)])[0]

    @router.get("/deliveries")
    def deliveries(
        status: list[DeliveryStatus] | None = Query(None, description="only these statuses (repeatable)"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        """Alert deliveries (the outbox), newest first: one per alert and sink."""
        return [d.to_dict() for d in ctx.alert_outbox.deliveries(status, limit=limit)]

    @router.get("/deliveries/{delivery_id}")
    def delivery(delivery_id: SqlInt) -> dict[str, Any]:
        """One delivery with every attempt."""
        outbox = ctx.alert_outbox
        return {
            **outbox.delivery(delivery_id).to_dict(),
            "attempt_log": [a.to_dict() for a in outbox.attempts(delivery_id)],
        }

    @router.post("/deliveries/{delivery_id}/redeliver")
    def redeliver(delivery_id: SqlInt) -> dict[str, Any]:
        """Queue a failed or given-up delivery again (the next delivery pass sends it)."""
        return ctx.alert_outbox.redeliver(delivery_id).to_dict()

    @router.get("/documents/{doc_id}")
    def document(doc_id: SqlInt) -> dict[str, Any]:
        return monitor().store.document(doc_id)

    @router.get("/runs")
    def runs(limit: int = Query(20, ge=1, le=500)) -> list[dict[str, Any]]:
        return [r.to_dict() for r in monitor().store.runs(limit)]

    @router.get("/runs/{run_id}")
    def run(run_id: SqlInt) -> dict[str, Any]:
        return monitor().store.run(run_id).to_dict()

    return router
