"""Fixtures of the ticket router's tests: contexts with only this plugin, and one trained model.

The plugin is tested as any third-party plugin would be: discovered through its entry
point, driven through the suite's CLI app, HTTP app and scheduler service.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ticket_router_support import PLUGIN, SAMPLE_DIR, TINY_TRAINING, make_context

from suite.context import SuiteContext

POSTGRES_ENV = "SUITE_TEST_POSTGRES_URL"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def clean_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No stray SUITE_* settings, and no suite.toml of the working directory."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # inference and embeddings too (the engine sets its own for training)
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("SUITE_") and name != POSTGRES_ENV]:
            patch.delenv(name)
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL that answers (``$SUITE_TEST_POSTGRES_URL`` or the local server), else skip."""
    from sqlalchemy import create_engine, text

    url = os.environ.get(POSTGRES_ENV, "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        pytest.skip(f"no usable PostgreSQL at {url.rsplit('@', 1)[-1]} (set {POSTGRES_ENV}): {type(exc).__name__}")
    return url


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """A writable copy of the sample inbox."""
    path = tmp_path / "inbox.jsonl"
    shutil.copyfile(SAMPLE_DIR / "inbox.jsonl", path)
    return path


@pytest.fixture
def ctx(tmp_path: Path, inbox: Path) -> Iterator[SuiteContext]:
    """A fresh, untrained context in a temp data dir, reading the ``inbox`` copy."""
    context = make_context(tmp_path / "data", {"inbox": str(inbox)})
    yield context
    context.shutdown()


@pytest.fixture(scope="session")
def trained_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding one registered router (trained once for the whole session) and its index."""
    data_dir = tmp_path_factory.mktemp("trained") / "data"
    context = make_context(data_dir)
    context.startup()
    context.training_task(f"{PLUGIN}:router").run(context, dict(TINY_TRAINING))
    context.search.close()
    context.shutdown()
    return data_dir


@pytest.fixture
def trained_copy(tmp_path: Path, trained_data_dir: Path) -> Path:
    """A data dir of the test's own (database, index) holding the trained model."""
    data_dir = tmp_path / "data"
    # Weights are hard-linked (never written after registration); everything else is copied.
    shutil.copytree(trained_data_dir, data_dir, copy_function=_link_weights)
    return data_dir


@pytest.fixture
def trained_ctx(trained_copy: Path, inbox: Path) -> Iterator[SuiteContext]:
    """A started context on :func:`trained_copy`, reading the ``inbox`` copy."""
    context = make_context(trained_copy, {"inbox": str(inbox)})
    context.startup()
    yield context
    context.shutdown()


def _link_weights(source: str, target: str) -> None:
    if source.endswith(".safetensors"):
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)
