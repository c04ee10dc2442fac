"""The Elasticsearch backend without a server: pure translation functions, config errors, and
the requests the real client sends (recorded by a loopback HTTP listener).

The listener answers with canned bodies: it checks *our use of the client* (parameter
names, bulk lines, refresh, knn body, score conversions, error mapping), not
Elasticsearch's behaviour; that is what the contract tests do when SUITE_ELASTICSEARCH_URL is set.
"""

from __future__ import annotations

import fnmatch
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from services.search import Document, IndexSpec, open_search_backend
from services.search.base import parse_filters
from services.search.elastic import (
    ElasticsearchBackend,
    bm25_query,
    bm25_score,
    cosine_score,
    es_index_name,
    filter_clauses,
    index_mapping,
    index_settings,
    knn_query,
    num_candidates,
    redact_url,
    spec_from_mapping,
)
from services.search.text import english_stop_words
from suite.config import SearchConfig
from suite.errors import ConfigError, DataError, NotFoundError, SuiteError


# -- pure translation ---------------------------------------------------------------------------
def test_index_names_and_mapping():
    assert es_index_name("suite", "faq") == "suite-faq"
    with pytest.raises(DataError):
        es_index_name("suite", "FAQ*")
    mapping = index_mapping(IndexSpec("faq", vector_dim=384, description="answers"))
    properties = mapping["properties"]
    assert properties["vector"] == {
        "type": "dense_vector",
        "dims": 384,
        "index": True,
        "similarity": "cosine",
        "index_options": {"type": "hnsw"},
    }
    assert properties["text"] == {"type": "text", "analyzer": "suite_text", "similarity": "suite_bm25"}
    assert properties["metadata"] == {"type": "object", "dynamic": True}
    assert mapping["dynamic"] == "strict" and mapping["date_detection"] is False
    templates = {next(iter(t)): next(iter(t.values())) for t in mapping["dynamic_templates"]}
    assert templates["metadata_strings"]["mapping"]["type"] == "keyword"
    assert {templates[name]["mapping"]["type"] for name in ("metadata_longs", "metadata_doubles")} == {"double"}
    assert "vector" not in index_mapping(IndexSpec("notes", vector_dim=None))["properties"]


def test_spec_round_trips_through_the_mapping_meta():
    spec = IndexSpec("faq", vector_dim=8, description="answers")
    assert spec_from_mapping({"mappings": index_mapping(spec)}) == spec
    assert spec_from_mapping({"mappings": {"properties": {}}}) is None  # not ours


def test_settings_mirror_the_embedded_tokenizer_and_bm25():
    settings = index_settings()
    assert settings["similarity"]["suite_bm25"] == {"type": "BM25", "k1": 1.5, "b": 0.75}
    assert settings["analysis"]["analyzer"]["suite_text"]["filter"] == ["lowercase", "suite_stop"]
    assert set(settings["analysis"]["filter"]["suite_stop"]["stopwords"]) == english_stop_words()


def test_filters_translate_to_term_terms_and_range():
    filters = {
        "city": "Bergen",
        "open": True,
        "tags": ["a", "b"],
        "year": {"gte": 2020, "lt": 2024},
        "venue.kind": "museum",
    }
    assert filter_clauses(parse_filters(filters)) == [
        {"term": {"metadata.city": "Bergen"}},
        {"term": {"metadata.open": True}},
        {"terms": {"metadata.tags": ["a", "b"]}},
        {"range": {"metadata.year": {"gte": 2020, "lt": 2024}}},
        {"term": {"metadata.venue.kind": "museum"}},
    ]
    assert filter_clauses(parse_filters(None)) == []


def test_queries():
    clauses = [{"term": {"metadata.city": "Bergen"}}]
    assert bm25_query("castle", clauses) == {
        "bool": {"must": [{"match": {"text": {"query": "castle"}}}], "filter": clauses}
    }
    knn = knn_query(np.array([0.5, 0.25], dtype=np.float32), 5, clauses)
    assert knn == {"field": "vector", "query_vector": [0.5, 0.25], "k": 5, "num_candidates": 100, "filter": clauses}
    assert "filter" not in knn_query(np.array([1.0]), 5, [])
    assert (num_candidates(1), num_candidates(50), num_candidates(5000)) == (100, 500, 10_000)


def test_score_conversions_and_url_redaction():
    assert bm25_score(2.0) == pytest.approx(5.0)  # times k1 + 1
    assert cosine_score(1.0) == 1.0 and cosine_score(0.5) == 0.0 and cosine_score(0.0) == -1.0
    assert redact_url("https://elastic:secret@es.example:9243/") == "https://elastic:***@es.example:9243/"
    assert redact_url("http://localhost:9200") == "http://localhost:9200"


# -- configuration and connection errors --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_missing_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="elasticsearch_url"):
        open_search_backend(SearchConfig(backend="elasticsearch"), tmp_path)


def test_malformed_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="elasticsearch_url"):
        open_search_backend(SearchConfig(backend="elasticsearch", elasticsearch_url="localhost"), tmp_path)


def test_unreachable_server_is_one_line_naming_the_url(tmp_path):
    url = f"http://user:pw@127.0.0.1:{free_port()}"
    with pytest.raises(SuiteError) as caught:
        open_search_backend(SearchConfig(backend="elasticsearch", elasticsearch_url=url), tmp_path)
    message = str(caught.value)
    assert "unreachable" in message and "127.0.0.1" in message and "pw" not in message and "\n" not in message


# -- the client's requests, recorded ------------------------------------------------------------
class Recorder(BaseHTTPRequestHandler):
    """Answers like a 9.x node would, in shape only; records (method, path, query, body)."""

    state: dict[str, Any]

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: Any = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _handle(self) -> None:
        state = self.state
        path, _, query = self.path.partition("?")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        body = None
        if raw:
            body = (
                [json.loads(line) for line in raw.splitlines() if line] if path.endswith("_bulk") else json.loads(raw)
            )
        state["requests"].append((self.command, path, query, body))
        if state.get("server_major") == 8 and "compatible-with=9" in (self.headers.get("Accept") or ""):
            error = {"type": "media_type_header_exception", "reason": "Invalid media-type value on headers"}
            return self._reply(400, {"error": {**error, "root_cause": [error]}, "status": 400})
        parts = [p for p in path.split("/") if p]
        missing = {"error": {"type": "index_not_found_exception", "reason": "no such index", "root_cause": [{}]}}
        if not parts:
            return self._reply(200, {"name": "stub", "version": {"number": "9.1.0"}, "tagline": "You Know, for Search"})
        if parts[0] == "_bulk":
            items = []
            for action in body[::1]:
                if "index" in action:
                    state["docs"].add(action["index"]["_id"])
                    items.append({"index": {"_id": action["index"]["_id"], "result": "created", "status": 201}})
                elif "delete" in action:
                    doc_id = action["delete"]["_id"]
                    found = doc_id in state["docs"]
                    state["docs"].discard(doc_id)
                    result = {"_id": doc_id, "result": "deleted" if found else "not_found"}
                    items.append({"delete": {**result, "status": 200 if found else 404}})
            return self._reply(200, {"took": 1, "errors": False, "items": items})
        index = parts[0]
        if "*" in index:  # GET <prefix>-*/_mapping
            matching = {
                name: {"mappings": created["mappings"]}
                for name, created in state["indexes"].items()
                if fnmatch.fnmatch(name, index)
            }
            return self._reply(200, matching)
        if self.command == "HEAD":
            return self._reply(200 if index in state["indexes"] else 404)
        if self.command == "PUT":
            state["indexes"][index] = body
            return self._reply(200, {"acknowledged": True, "index": index})
        if index not in state["indexes"]:
            return self._reply(404, missing)
        if self.command == "DELETE":
            del state["indexes"][index]
            return self._reply(200, {"acknowledged": True})
        if parts[1:] == ["_mapping"]:
            return self._reply(200, {index: {"mappings": state["indexes"][index]["mappings"]}})
        if parts[1:] == ["_count"]:
            return self._reply(200, {"count": len(state["docs"])})
        if parts[1] == "_doc":
            source = {"text": "stored text", "metadata": {"city": "Bergen"}, "vector": [1.0, 0.0]}
            if parts[2] in state["docs"]:
                return self._reply(200, {"_id": parts[2], "found": True, "_source": source})
            return self._reply(404, {"_id": parts[2], "found": False})
        if parts[1] == "_search":
            score = 0.9 if "knn" in body else 2.0
            hit = {"_id": "d1", "_score": score, "_source": {"text": "stored text", "metadata": {"city": "Bergen"}}}
            return self._reply(200, {"hits": {"hits": [hit]}})
        return self._reply(400, {"error": {"type": "unexpected", "reason": self.path}})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


@pytest.fixture
def recorder():
    state: dict[str, Any] = {"requests": [], "indexes": {}, "docs": set()}
    handler = type("BoundRecorder", (Recorder,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def es(recorder) -> ElasticsearchBackend:
    config = SearchConfig(backend="elasticsearch", elasticsearch_url=recorder["url"], index_prefix="t")
    backend = open_search_backend(config, data_dir=None)  # type: ignore[arg-type]
    assert isinstance(backend, ElasticsearchBackend)
    yield backend
    backend.close()


def sent(recorder, method: str, path: str) -> list[tuple[str, dict]]:
    return [(query, body) for m, p, query, body in recorder["requests"] if m == method and p == path]


def test_ensure_index_creates_the_mapping_once(es, recorder):
    spec = IndexSpec("docs", vector_dim=2, description="d")
    es.ensure_index(spec)
    es.ensure_index(spec)
    (created,) = sent(recorder, "PUT", "/t-docs")
    assert created[1] == {"mappings": index_mapping(spec), "settings": index_settings()}
    with pytest.raises(DataError, match="dimension 2"):
        es.ensure_index(IndexSpec("docs", vector_dim=3))
    assert es.list_indexes() == ["docs"]


def test_bulk_writes_refresh_only_on_the_last_batch(es, recorder):
    es.ensure_index(IndexSpec("docs", vector_dim=2))
    docs = [Document(f"d{i}", f"text {i}", [1.0, float(i)], {"i": i}) for i in range(5)]
    assert es.upsert("docs", docs, batch_size=2) == 5
    bulks = sent(recorder, "POST", "/_bulk") + sent(recorder, "PUT", "/_bulk")
    assert [len(body) // 2 for _, body in bulks] == [2, 2, 1]
    assert ["refresh=wait_for" in query for query, _ in bulks] == [False, False, True]
    action, source = bulks[0][1][:2]
    assert action == {"index": {"_index": "t-docs", "_id": "d0"}}
    assert source == {"text": "text 0", "metadata": {"i": 0}, "vector": [1.0, 0.0]}
    with pytest.raises(DataError):
        es.upsert("docs", [Document("bad", "wrong dimension", [1.0, 2.0, 3.0])])
    assert es.delete("docs", ["d1", "d2", "nope"]) == 2


def test_searches_send_match_and_knn_and_rescale_scores(es, recorder):
    es.ensure_index(IndexSpec("docs", vector_dim=2))
    (bm25,) = es.search("docs", text="castle", k=3, filters={"city": "Bergen"})
    assert bm25.score == pytest.approx(5.0) and bm25.bm25_rank == 1 and bm25.metadata == {"city": "Bergen"}
    (knn,) = es.search("docs", vector=[1.0, 0.0], k=3)
    assert knn.score == pytest.approx(0.8) and knn.vector_rank == 1
    (hybrid,) = es.search("docs", text="castle", vector=[1.0, 0.0], k=3)
    assert (hybrid.bm25_rank, hybrid.vector_rank) == (1, 1) and hybrid.score == pytest.approx(2 / 61)
    searches = [body for _, body in sent(recorder, "POST", "/t-docs/_search")]
    assert searches[0]["query"] == bm25_query("castle", [{"term": {"metadata.city": "Bergen"}}])
    assert searches[0]["size"] == 3 and searches[0]["_source"] == ["text", "metadata"]
    assert searches[1]["knn"] == knn_query(np.array([1.0, 0.0]), 3, [])
    assert searches[2]["size"] == 50 and searches[3]["knn"]["k"] == 50  # hybrid: rank window per leg
    with pytest.raises(DataError):
        es.search("docs", vector=[1.0, 0.0, 0.0])
    with pytest.raises(DataError):
        es.search("docs", text=" ", mode="bm25")


def test_missing_index_and_documents(es, recorder):
    with pytest.raises(NotFoundError, match="'ghost'"):
        es.search("ghost", text="castle")
    with pytest.raises(NotFoundError, match="'ghost'"):
        es.upsert("ghost", [Document("a", "b")])
    with pytest.raises(NotFoundError):
        es.drop_index("ghost")
    es.ensure_index(IndexSpec("docs", vector_dim=2))
    assert es.get("docs", "nope") is None
    es.upsert("docs", [Document("d1", "stored text", [1.0, 0.0])])
    assert es.get("docs", "d1") == Document("d1", "stored text", [1.0, 0.0], {"city": "Bergen"})
    assert es.count("docs", {"city": "Bergen"}) == 1
    assert sent(recorder, "POST", "/t-docs/_count")[-1][1] == {
        "query": {"bool": {"filter": [{"term": {"metadata.city": "Bergen"}}]}}
    }
    es.drop_index("docs")
    assert es.list_indexes() == []


def test_an_8x_server_gets_a_clear_version_message(recorder, tmp_path):
    recorder["server_major"] = 8
    config = SearchConfig(backend="elasticsearch", elasticsearch_url=recorder["url"])
    with pytest.raises(ConfigError, match="elasticsearch>=8.12,<9"):
        open_search_backend(config, tmp_path)
