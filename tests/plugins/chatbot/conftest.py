"""Fixtures of the chatbot tests: contexts with only this plugin, one model trained per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from suite.context import SuiteContext

OTHER_PLUGINS_OFF = {"sentiment": {"enabled": False}, "recommender": {"enabled": False}}
# Enough for the sample's 12 intents to be learnt (about 60 steps), small enough for 2 busy cores.
SMALL_TRAINING = {"epochs": 6, "batch_size": 16, "max_length": 32}


def make_context(data_dir: Path, options: dict[str, Any] | None = None, **settings: Any) -> SuiteContext:
    """A context with only the chatbot enabled, one torch thread, and the given chatbot options."""
    plugins = {**OTHER_PLUGINS_OFF, "chatbot": options or {}}
    training = {"num_threads": 1, "device": "cpu", **settings.pop("training", {})}
    return SuiteContext.create(None, data_dir=data_dir, plugins=plugins, training=training, **settings)


@pytest.fixture
def context_factory(tmp_path: Path, started_contexts: Callable[..., SuiteContext]) -> Callable[..., SuiteContext]:
    def factory(options: dict[str, Any] | None = None, data_dir: Path | None = None, **settings: Any) -> SuiteContext:
        return started_contexts(make_context(data_dir or tmp_path / "data", options, **settings))

    return factory


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the sample knowledge base indexed and the intent model trained, once per session."""
    import torch

    from plugins.chatbot.training import train_from_files

    torch.set_num_threads(1)
    data_dir = tmp_path_factory.mktemp("chatbot-trained")
    ctx = make_context(data_dir, SMALL_TRAINING)
    try:
        ctx.startup()
        train_from_files(ctx, {"progress": False})
    finally:
        ctx.shutdown()
    return data_dir


@pytest.fixture
def trained_ctx(trained_dir: Path, context_factory: Callable[..., SuiteContext]) -> SuiteContext:
    """A fresh context on the trained data dir (sessions and the exchange log are shared with other tests)."""
    return context_factory(SMALL_TRAINING, data_dir=trained_dir)
