"""The plugin's options: the ``[plugins.tickets]`` table of ``suite.toml``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PLUGIN = "tickets"
TASK = "router"
INDEX = "tickets"
DATA_DIR = Path(__file__).parent / "data"


class TicketOptions(BaseModel):
    """Every default runs on a laptop with the shipped sample data."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is an error at start-up

    data: Path = Field(DATA_DIR / "tickets.csv", description="past tickets: CSV or JSONL with id, text, queue")
    inbox: Path = Field(DATA_DIR / "inbox.jsonl", description="new tickets (JSONL: id, text) the job routes")
    inbox_minutes: int = Field(10, ge=1, description="how often the scheduler routes the inbox")
    similar_k: int = Field(3, ge=0, le=20, description="similar past tickets shown with each routing")
    review_below: float = Field(0.5, ge=0, le=1, description="confidence under which a ticket is flagged")
    # Training defaults sized for the sample (80 tickets, under a minute on 2 CPU cores).
    epochs: float = Field(4.0, gt=0)
    batch_size: int = Field(16, ge=1)
    learning_rate: float | None = Field(None, gt=0, description="None: the suite's [training] default")
    max_steps: int | None = Field(None, ge=1)
    validation_fraction: float = Field(0.15, ge=0, lt=1)
