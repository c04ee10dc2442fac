"""Past tickets in the shared search service, to show the most similar ones with each routing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.search import Document, IndexSpec
from suite_ticket_router.data import Ticket
from suite_ticket_router.options import INDEX

if TYPE_CHECKING:
    from services.search import SearchBackend
    from suite.context import SuiteContext


@dataclass(frozen=True)
class SimilarTicket:
    id: str
    text: str
    queue: str | None
    score: float  # cosine similarity of the two tickets' embeddings


def index_spec(ctx: SuiteContext) -> IndexSpec:
    # The dimension comes from the embedding model's config: no weights are loaded here.
    return IndexSpec(INDEX, vector_dim=ctx.embedder().dimension, description="past and routed support tickets")


class TicketIndex:
    """Tickets embedded with the shared sentence embedder and kept in ``ctx.search``."""

    def __init__(self, ctx: SuiteContext) -> None:
        self.ctx = ctx

    def backend(self) -> SearchBackend:
        backend = self.ctx.search
        backend.ensure_index(index_spec(self.ctx))  # idempotent: creates the index on first use
        return backend

    def add(self, tickets: Sequence[Ticket], source: str) -> int:
        """Index (or re-index: ids are unique) ``tickets``; ``source`` is kept for filtering."""
        if not tickets:
            return 0
        vectors = self.ctx.embedder().encode([ticket.text for ticket in tickets])
        documents = [
            Document(ticket.id, ticket.text, vector, {"queue": ticket.queue or "", "source": source})
            for ticket, vector in zip(tickets, vectors, strict=True)
        ]
        return self.backend().upsert(INDEX, documents)

    def similar(self, text: str, k: int, exclude: str | None = None) -> list[SimilarTicket]:
        """The ``k`` indexed tickets closest in meaning to ``text`` (``exclude``: the ticket itself)."""
        if k <= 0:
            return []
        backend = self.backend()
        vector = self.ctx.embedder().encode_one(text)
        hits = backend.search(INDEX, vector=vector, k=k + 1, mode="vector")
        found = [SimilarTicket(h.id, h.text, h.metadata.get("queue") or None, round(h.score, 4)) for h in hits]
        return [ticket for ticket in found if ticket.id != exclude][:k]
