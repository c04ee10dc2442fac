"""Fixtures shared by the built-in plugins' tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from suite.context import SuiteContext


@pytest.fixture
def started_contexts() -> Iterator[Callable[[SuiteContext], SuiteContext]]:
    """Start a context for a test and shut it down afterwards, however the test ends."""
    made: list[SuiteContext] = []

    def start(ctx: SuiteContext) -> SuiteContext:
        ctx.startup()
        made.append(ctx)
        return ctx

    yield start
    for ctx in made:
        ctx.shutdown()
