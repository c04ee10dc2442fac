"""Shared fixtures: every test runs offline, in its own data dir, with no stray SUITE_* settings."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# Environment a test may legitimately inherit (CI services), everything else SUITE_* is dropped.
KEPT_ENV = {"SUITE_ELASTICSEARCH_URL", "SUITE_TEST_POSTGRES_URL", "SUITE_TEST_REDIS_URL"}
POSTGRES_URL = os.environ.get("SUITE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SUITE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def isolated_suite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir per test, set through the environment as a user would."""
    for name in list(os.environ):
        if name.startswith("SUITE_") and name not in KEPT_ENV:
            monkeypatch.delenv(name)
    data_dir = tmp_path / "suite-data"
    monkeypatch.setenv("SUITE_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    return data_dir


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL that answers, or the test is skipped with the reason."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    if not _port_open(url.host or "127.0.0.1", url.port or 5432):
        pytest.skip(f"no PostgreSQL server answers at {url.host}:{url.port or 5432} (set SUITE_TEST_POSTGRES_URL)")
    try:
        engine = create_engine(url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # server up but unusable: skip, say why
        pytest.skip(f"PostgreSQL at {url.host}:{url.port} refused the test connection: {exc}")
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose tables (and migration version tables) live in a schema of this test alone, dropped after."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"suite_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL that answers PING, or the test is skipped with the reason."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis server answers at {REDIS_URL} (set SUITE_TEST_REDIS_URL): {exc}")
    finally:
        client.close()
    return REDIS_URL
