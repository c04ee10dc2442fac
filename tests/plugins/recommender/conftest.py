"""Fixtures of the recommender tests: contexts on temp data dirs, sample-data writers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from suite.context import SuiteContext


def other_plugins_off() -> dict[str, dict[str, bool]]:
    """Switch off the other built-in plugins: these tests exercise the recommender alone."""
    names = {ep.name for ep in metadata.entry_points(group="suite.plugins")}
    return {name: {"enabled": False} for name in sorted(names - {"recommender"})}


def make_context(data_dir: Path, database_url: str | None = None, **options: Any) -> SuiteContext:
    import torch

    torch.set_num_threads(2)  # the machine is shared: never more than its two cores
    ctx = SuiteContext.create(
        None, data_dir=data_dir, database_url=database_url, plugins={**other_plugins_off(), "recommender": options}
    )
    ctx.startup()
    return ctx


@pytest.fixture
def context_factory(tmp_path: Path) -> Iterator[Callable[..., SuiteContext]]:
    """Build contexts (database URL and recommender options as arguments), shut down afterwards."""
    made: list[SuiteContext] = []

    def make(database_url: str | None = None, **options: Any) -> SuiteContext:
        made.append(make_context(tmp_path / f"data{len(made)}", database_url, **options))
        return made[-1]

    yield make
    for context in made:
        context.shutdown()


@pytest.fixture
def ctx(context_factory: Callable[..., SuiteContext]) -> SuiteContext:
    return context_factory()


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[[str, list[dict]], Path]:
    def write(name: str, rows: list[dict]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SuiteContext, Any]]:
    """One context per module with the sample data and a tiny fine-tuned bi-encoder (a few steps)."""
    from plugins.recommender.training import train_and_register

    context = make_context(
        tmp_path_factory.mktemp("recommender"),
        training={"max_steps": 4, "batch_size": 8, "max_pairs": 64, "epochs": 2, "adapter_epochs": 3},
    )
    version = train_and_register(context, {}, progress=False)
    yield context, version
    context.shutdown()
