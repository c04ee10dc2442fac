"""Helpers shared by the ticket router's tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from suite.context import SuiteContext

PLUGIN = "tickets"
SAMPLE_DIR = Path(__file__).parents[1] / "suite_ticket_router" / "data"
QUEUES = ["access", "billing", "hardware", "network", "software"]
# A few optimiser steps prove the wiring; the sample's real quality is measured by `suite train tickets`.
TINY_TRAINING = {"max_steps": 10, "batch_size": 8}


def make_context(data_dir: Path, options: dict[str, Any] | None = None, **settings: Any) -> SuiteContext:
    """A context with every other installed plugin disabled, so only this one's hooks run.

    Training uses one torch thread: on a busy machine a second one mostly spins.
    """
    others = {ep.name: {"enabled": False} for ep in metadata.entry_points(group="suite.plugins") if ep.name != PLUGIN}
    plugins = {**others, PLUGIN: dict(options or {})}
    settings.setdefault("training", {"num_threads": 1})
    return SuiteContext.create(None, data_dir=data_dir, plugins=plugins, **settings)
