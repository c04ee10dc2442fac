"""What the commands, the HTTP route and the job do: route one ticket, or route the whole inbox."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite_ticket_router.data import Ticket, load_inbox
from suite_ticket_router.index import SimilarTicket, TicketIndex
from suite_ticket_router.model import Routing, router_for
from suite_ticket_router.options import PLUGIN
from suite_ticket_router.store import RoutedStore, RoutedTicket, now

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from services.outbox import AlertOutbox
    from suite.context import SuiteContext

log = logging.getLogger(__name__)

# Labels of this plugin's entity patterns (see ``entity_patterns``): the ones shown with a routing.
ASSET_TAG, ERROR_CODE = "ASSET_TAG", "ERROR_CODE"


def entity_patterns() -> list[dict[str, Any]]:
    """spaCy EntityRuler patterns for asset tags (``LT-20431``) and Windows-style error codes."""
    return [
        {"label": ASSET_TAG, "pattern": [{"TEXT": {"REGEX": r"^(?:LT|PC|MON|PRN|SRV)-\d{3,6}$"}}]},
        {"label": ERROR_CODE, "pattern": [{"TEXT": {"REGEX": r"^0x[0-9A-Fa-f]{4,8}$"}}]},
    ]


@dataclass(frozen=True)
class RouteAnswer:
    routing: Routing
    similar: list[SimilarTicket]
    entities: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.routing), "similar": [asdict(s) for s in self.similar], "entities": self.entities}


def route_ticket(ctx: SuiteContext, text: str, similar: int | None = None) -> RouteAnswer:
    """Route one ticket and find the most similar past tickets; stores nothing."""
    routing = router_for(ctx).route([text])[0]
    k = ctx.plugin_options(PLUGIN).similar_k if similar is None else similar
    entities = [
        {"label": e.label, "text": e.text}
        for e in ctx.preprocessor.entities([text])[0]
        if e.label in (ASSET_TAG, ERROR_CODE)
    ]
    return RouteAnswer(routing, TicketIndex(ctx).similar(text, k), entities)


@dataclass
class InboxReport:
    """One pass over the inbox: what was read, newly routed, already done or skipped."""

    read: int = 0
    routed: int = 0
    already_routed: int = 0
    needs_review: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        parts = [f"{self.read} tickets read", f"{self.routed} routed", f"{self.already_routed} already routed"]
        if self.needs_review:
            parts.append(f"{len(self.needs_review)} flagged for review")
        if self.skipped:
            parts.append(f"{len(self.skipped)} lines skipped")
        return ", ".join(parts)


def process_inbox(ctx: SuiteContext, path: str | Path | None = None) -> InboxReport:
    """Route every inbox ticket not routed before; safe to run again (idempotent by ticket id).

    New tickets are routed in one batch, indexed for similarity search and then stored in
    one transaction: a failure part-way leaves them unstored, so the next run redoes them
    (re-indexing overwrites by id). Low-confidence tickets raise one alert per run, queued in
    the transaction that stores them (the core's delivery job sends it).
    """
    inbox = load_inbox(path or ctx.plugin_options(PLUGIN).inbox)
    for problem in inbox.skipped:
        log.warning("tickets inbox: skipped %s", problem)
    store = RoutedStore(ctx.database)
    done = store.routed_ids(ticket.id for ticket in inbox.tickets)
    new = [ticket for ticket in inbox.tickets if ticket.id not in done]
    report = InboxReport(read=len(inbox.tickets), already_routed=len(done), skipped=inbox.skipped)
    if not new:
        return report
    routings = router_for(ctx).route([ticket.text for ticket in new])
    TicketIndex(ctx).add([Ticket(t.id, t.text, r.queue) for t, r in zip(new, routings, strict=True)], "inbox")
    routed_at = now()
    rows = [
        RoutedTicket(t.id, t.text, r.queue, r.confidence, r.needs_review, r.model, routed_at)
        for t, r in zip(new, routings, strict=True)
    ]
    report.routed = store.add(rows, on_stored=partial(queue_review_alert, ctx.alert_outbox))
    report.already_routed += len(rows) - report.routed  # routed by a concurrent run meanwhile
    report.needs_review = [row.ticket_id for row in rows if row.needs_review]
    return report


def queue_review_alert(outbox: AlertOutbox, connection: Connection, stored: list[RoutedTicket]) -> None:
    """One alert naming the newly stored tickets that need a human, queued for every sink."""
    from services.alerts import Alert

    rows = [row for row in stored if row.needs_review]
    if not rows:
        return
    outbox.enqueue(
        connection,
        Alert(
            key="tickets.needs-review",
            title=f"{len(rows)} ticket(s) need a human to route them",
            message="The router was not confident enough: " + ", ".join(r.ticket_id for r in rows[:20]),
            severity="warning",
            source=PLUGIN,
            evidence=[{"id": r.ticket_id, "title": r.text[:120], "queue": r.queue} for r in rows[:20]],
        ),
    )
