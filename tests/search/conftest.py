"""Search backends for the contract tests: embedded always, Elasticsearch when a server is given.

``backend`` is a fresh, empty backend; ``open_backend()`` opens another instance over the
same storage (same folder, or same Elasticsearch index prefix), as a second process would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.search import SearchBackend, open_search_backend
from suite.config import SearchConfig

ES_URL_ENV = "SUITE_ELASTICSEARCH_URL"
BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param(
        "elasticsearch",
        id="elasticsearch",
        marks=[
            pytest.mark.elasticsearch,
            pytest.mark.skipif(
                not os.environ.get(ES_URL_ENV), reason=f"no Elasticsearch server: set {ES_URL_ENV} to run these"
            ),
        ],
    ),
]


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def search_config(backend_kind: str) -> SearchConfig:
    if backend_kind == "embedded":
        return SearchConfig()
    # A prefix of its own per test: tests never see each other's indexes.
    return SearchConfig(
        backend="elasticsearch",
        elasticsearch_url=os.environ[ES_URL_ENV],
        elasticsearch_api_key=os.environ.get("SUITE_ELASTICSEARCH_API_KEY") or None,
        index_prefix=f"suite-test-{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture
def open_backend(search_config: SearchConfig, tmp_path: Path) -> Iterator[Callable[[], SearchBackend]]:
    opened: list[SearchBackend] = []

    def open_one() -> SearchBackend:
        backend = open_search_backend(search_config, tmp_path / "data")
        opened.append(backend)
        return backend

    yield open_one
    if search_config.backend == "elasticsearch" and opened:
        cleaner = open_search_backend(search_config, tmp_path / "data")
        for name in cleaner.list_indexes():
            cleaner.drop_index(name)
        cleaner.close()
    for backend in opened:
        backend.close()


@pytest.fixture
def backend(open_backend: Callable[[], SearchBackend]) -> SearchBackend:
    return open_backend()
