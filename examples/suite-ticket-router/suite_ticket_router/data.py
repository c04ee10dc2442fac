"""Reading tickets: the labelled history (training data) and the inbox of new tickets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from services.training import LabeledText
from services.training.data import read_records
from suite.errors import DataError

MAX_ID_CHARS = 200  # the width of the stored ticket id


@dataclass(frozen=True)
class Ticket:
    """A support ticket; ``queue`` is known for past tickets and predicted for new ones."""

    id: str
    text: str
    queue: str | None = None


@dataclass
class Inbox:
    """The readable tickets of an inbox file and a note per line that was skipped."""

    tickets: list[Ticket] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_history(path: str | Path) -> list[Ticket]:
    """Past tickets with their queue, from a CSV or JSONL file with ``id``, ``text``, ``queue``.

    :raises DataError: one line naming the file (and line) for a missing file, a missing
        column, an empty value or a repeated id.
    """
    tickets = [Ticket(*values) for values in read_records(path, ("id", "text", "queue"))]
    seen: set[str] = set()
    for ticket in tickets:
        if ticket.id in seen:
            raise DataError(f"{path}: ticket id '{ticket.id}' appears more than once")
        seen.add(ticket.id)
    return tickets


def as_examples(tickets: list[Ticket]) -> list[LabeledText]:
    """Training examples for the shared engine: the ticket text labelled with its queue."""
    return [LabeledText(ticket.text, ticket.queue) for ticket in tickets if ticket.queue]


def load_inbox(path: str | Path) -> Inbox:
    """New tickets from a JSONL file, one ``{"id": ..., "text": ...}`` object per line.

    An inbox is written by other systems, so one bad line must not block the rest: it is
    skipped and described in :attr:`Inbox.skipped`. Repeated ids keep their first line.

    :raises DataError: the file is missing or not UTF-8 text.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: inbox file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    inbox, seen = Inbox(), set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            ticket = _parse_inbox_line(line)
        except ValueError as exc:
            inbox.skipped.append(f"{path.name}:{number}: {exc}")
            continue
        if ticket.id not in seen:
            seen.add(ticket.id)
            inbox.tickets.append(ticket)
    return inbox


def _parse_inbox_line(line: str) -> Ticket:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    ticket_id, text = record.get("id"), record.get("text")
    if not isinstance(ticket_id, str | int) or not str(ticket_id).strip():
        raise ValueError("missing 'id'")
    if len(str(ticket_id).strip()) > MAX_ID_CHARS:
        raise ValueError(f"'id' longer than {MAX_ID_CHARS} characters")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("missing or empty 'text'")
    return Ticket(str(ticket_id).strip(), text.strip())
