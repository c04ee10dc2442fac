"""The Elasticsearch backend, on the official ``elasticsearch`` client (8.12+ or 9.x).

Index ``<index_prefix>-<name>`` holds ``text`` (BM25 with k1=1.5, b=0.75 and an analyzer
that mirrors the embedded tokeniser: standard tokenizer, lowercase, spaCy's English stop
words, no stemming), ``vector`` (``dense_vector``, cosine, HNSW-indexed) and ``metadata``
(dynamic: strings become ``keyword``, numbers ``double``, so filters mean the same as on
the embedded backend). The client speaks the REST API of its own major version, so a
9.x client needs a 9.x server; for an 8.x server install ``elasticsearch>=8.12,<9``:
this module only uses calls both clients share and the top-level ``knn`` search option
(Elasticsearch 8.4+).

Scores are put on the embedded backend's scale: BM25 times (k1 + 1), which Lucene leaves
out, and cosine similarity instead of Elasticsearch's ``(1 + cosine) / 2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import elasticsearch
import numpy as np
from elasticsearch import Elasticsearch, helpers

from services.errors import ConfigError, DataError, NotFoundError, SuiteError
from services.search.base import (
    AnyOf,
    Condition,
    Document,
    Equals,
    Hit,
    IndexInfo,
    IndexSpec,
    SearchMode,
    as_vector,
    batched,
    check_document,
    check_index_name,
    check_k,
    check_spec,
    parse_filters,
    rank_window,
    reciprocal_rank_fusion,
    resolve_mode,
)
from services.search.bm25 import BM25Params
from services.search.text import english_stop_words
from services.settings import SearchConfig

MAPPING_SCHEMA = 1
MAX_K = 10_000  # Elasticsearch's index.max_result_window and knn num_candidates ceiling
SOURCE_FIELDS = ["text", "metadata"]
BM25 = BM25Params()


# -- pure translation: config, mapping, queries (unit-tested without a server) ------------
def es_index_name(prefix: str, name: str) -> str:
    return f"{prefix}-{check_index_name(name)}"


def index_settings(params: BM25Params = BM25) -> dict[str, Any]:
    """Analysis and similarity settings shared by every suite index."""
    return {
        "analysis": {
            "filter": {"suite_stop": {"type": "stop", "stopwords": sorted(english_stop_words())}},
            "analyzer": {
                "suite_text": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "suite_stop"],
                }
            },
        },
        "similarity": {"suite_bm25": {"type": "BM25", "k1": params.k1, "b": params.b}},
    }


def index_mapping(spec: IndexSpec) -> dict[str, Any]:
    """Field mappings of one index; ``_meta`` keeps the spec so it can be read back."""
    properties: dict[str, Any] = {
        "text": {"type": "text", "analyzer": "suite_text", "similarity": "suite_bm25"},
        "metadata": {"type": "object", "dynamic": True},
    }
    if spec.vector_dim:
        properties["vector"] = {
            "type": "dense_vector",
            "dims": spec.vector_dim,
            "index": True,
            "similarity": "cosine",
            # Plain float HNSW: newer servers default to quantised graphs (int8/bbq) whose
            # scores drift from the exact cosine the embedded backend returns.
            "index_options": {"type": "hnsw"},
        }
    return {
        "dynamic": "strict",  # only metadata grows fields
        "date_detection": False,  # ISO dates stay strings, compared as strings (as embedded does)
        "numeric_detection": False,
        "dynamic_templates": [
            {
                "metadata_strings": {
                    "path_match": "metadata.*",
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": 8191},
                }
            },
            # every number as double: an int first seen must not truncate later floats
            {
                "metadata_longs": {
                    "path_match": "metadata.*",
                    "match_mapping_type": "long",
                    "mapping": {"type": "double"},
                }
            },
            {
                "metadata_doubles": {
                    "path_match": "metadata.*",
                    "match_mapping_type": "double",
                    "mapping": {"type": "double"},
                }
            },
        ],
        "_meta": {
            "suite": {
                "name": spec.name,
                "vector_dim": spec.vector_dim,
                "description": spec.description,
                "schema": MAPPING_SCHEMA,
            }
        },
        "properties": properties,
    }


def spec_from_mapping(mapping: dict[str, Any]) -> IndexSpec | None:
    """The spec stored in an index's ``_meta``; None for indexes the suite did not create."""
    meta = (mapping.get("mappings") or mapping).get("_meta", {}).get("suite")
    if not isinstance(meta, dict) or "name" not in meta:
        return None
    return IndexSpec(meta["name"], meta.get("vector_dim"), meta.get("description", ""))


def filter_clauses(conditions: list[tuple[str, Condition]]) -> list[dict[str, Any]]:
    """Parsed filters as ``bool.filter`` clauses: term, terms and range on ``metadata.<field>``."""
    clauses = []
    for field, condition in conditions:
        path = f"metadata.{field}"
        if isinstance(condition, Equals):
            clauses.append({"term": {path: condition.value}})
        elif isinstance(condition, AnyOf):
            clauses.append({"terms": {path: list(condition.values)}})
        else:
            clauses.append({"range": {path: condition.bounds()}})
    return clauses


def bm25_query(text: str, clauses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bool": {"must": [{"match": {"text": {"query": text}}}], "filter": clauses}}


def num_candidates(k: int) -> int:
    """HNSW candidates per shard: generous, so small indexes get exact answers."""
    return min(MAX_K, max(100, 10 * k))


def knn_query(vector: np.ndarray, k: int, clauses: list[dict[str, Any]]) -> dict[str, Any]:
    knn: dict[str, Any] = {
        "field": "vector",
        "query_vector": [float(x) for x in vector],
        "k": k,
        "num_candidates": num_candidates(k),
    }
    if clauses:
        knn["filter"] = clauses  # applied during the HNSW walk, not after it
    return knn


def count_query(clauses: list[dict[str, Any]]) -> dict[str, Any] | None:
    return {"bool": {"filter": clauses}} if clauses else None


def index_action(es_index: str, doc: Document, vector: np.ndarray | None) -> dict[str, Any]:
    source: dict[str, Any] = {"text": doc.text, "metadata": doc.metadata}
    if vector is not None:
        source["vector"] = [float(x) for x in vector]
    return {"_op_type": "index", "_index": es_index, "_id": doc.id, "_source": source}


def bm25_score(es_score: float, params: BM25Params = BM25) -> float:
    """Lucene's BM25 leaves out the constant (k1 + 1): put it back."""
    return es_score * (params.k1 + 1.0)


def cosine_score(es_score: float) -> float:
    """Elasticsearch reports cosine similarity as (1 + cos) / 2."""
    return 2.0 * es_score - 1.0


def redact_url(url: str) -> str:
    """The URL without a password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _error_type(exc: elasticsearch.ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return error.get("type", "") if isinstance(error, dict) else ""


def _reason(exc: elasticsearch.ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    text = str(exc)
    if isinstance(error, dict):
        cause = error.get("caused_by", {}).get("reason")
        text = f"{error.get('reason', error.get('type'))}" + (f" ({cause})" if cause else "")
    return " ".join(text.split())


# -- the backend ----------------------------------------------------------------------------
class ElasticsearchBackend:
    """:class:`~services.search.SearchBackend` on an Elasticsearch cluster."""

    backend_name = "elasticsearch"

    def __init__(self, client: Elasticsearch, *, url: str, index_prefix: str = "suite", rrf_k: int = 60) -> None:
        self.client = client
        self.url = redact_url(url)
        self.index_prefix = index_prefix
        self.rrf_k = rrf_k
        self._specs: dict[str, IndexSpec] = {}

    @classmethod
    def from_config(cls, config: SearchConfig) -> ElasticsearchBackend:
        """Connect and check the cluster answers; one-line errors for every way that fails."""
        url = config.elasticsearch_url
        if not url:
            raise ConfigError("search.backend is 'elasticsearch' but search.elasticsearch_url is not set")
        api_key = config.elasticsearch_api_key.get_secret_value() if config.elasticsearch_api_key else None
        try:
            client = Elasticsearch(url, api_key=api_key, request_timeout=30, max_retries=2, retry_on_timeout=True)
        except ValueError as exc:
            raise ConfigError(f"search.elasticsearch_url {redact_url(url)!r} is not usable: {exc}") from None
        backend = cls(client, url=url, index_prefix=config.index_prefix, rrf_k=config.rrf_k)
        backend.ping()
        return backend

    def ping(self) -> None:
        """Fail early, in one line, when the URL does not lead to a usable cluster."""
        with self._errors():
            try:
                self.client.options(request_timeout=10, max_retries=0).info()
            except (elasticsearch.NotFoundError, elasticsearch.UnsupportedProductError) as exc:
                raise SuiteError(
                    f"{self.url} did not answer as an Elasticsearch server would "
                    f"(HTTP {getattr(exc, 'status_code', '?')}): check search.elasticsearch_url"
                ) from None

    @contextmanager
    def _errors(self, index: str | None = None) -> Iterator[None]:
        """Client exceptions as one-line suite errors that name the URL or the index."""
        try:
            yield
        except elasticsearch.NotFoundError as exc:
            if index is not None and _error_type(exc) in ("index_not_found_exception", ""):
                raise NotFoundError(f"search index '{index}' does not exist") from None
            raise SuiteError(f"Elasticsearch at {self.url}: {_reason(exc)}") from None
        except elasticsearch.AuthenticationException:
            raise ConfigError(
                f"Elasticsearch at {self.url} rejected the credentials (check search.elasticsearch_api_key)"
            ) from None
        except elasticsearch.BadRequestError as exc:
            if _error_type(exc) == "media_type_header_exception":
                raise ConfigError(
                    f"Elasticsearch at {self.url} does not speak the REST API of client "
                    f"{elasticsearch.__versionstr__}: install the client of the server's major version "
                    "(for an 8.x server: pip install 'elasticsearch>=8.12,<9')"
                ) from None
            raise DataError(f"Elasticsearch rejected the request: {_reason(exc)}") from None
        except elasticsearch.ApiError as exc:
            raise SuiteError(f"Elasticsearch at {self.url}: {_reason(exc)}") from None
        except elasticsearch.TransportError as exc:  # connection refused, timeout, TLS...
            detail = " ".join(str(getattr(exc, "message", exc)).split())
            raise SuiteError(f"Elasticsearch at {self.url} is unreachable: {detail}") from None

    def _name(self, index: str) -> str:
        return es_index_name(self.index_prefix, index)

    def _spec(self, index: str, *, fresh: bool = False) -> IndexSpec:
        """The index's spec from its mapping ``_meta`` (cached; NotFoundError if absent)."""
        if fresh or index not in self._specs:
            with self._errors(index):
                response = self.client.indices.get_mapping(index=self._name(index))
            spec = next((s for m in response.body.values() if (s := spec_from_mapping(m))), None)
            if spec is None:
                raise NotFoundError(f"Elasticsearch index '{self._name(index)}' was not created by the suite")
            self._specs[index] = spec
        return self._specs[index]

    # -- index management ------------------------------------------------------------------
    def ensure_index(self, spec: IndexSpec) -> None:
        check_spec(spec)
        es_index = self._name(spec.name)
        with self._errors():
            if not self.client.indices.exists(index=es_index):
                try:
                    self.client.indices.create(index=es_index, mappings=index_mapping(spec), settings=index_settings())
                    self._specs[spec.name] = spec
                    return
                except elasticsearch.BadRequestError as exc:
                    if _error_type(exc) != "resource_already_exists_exception":  # lost a race: fine
                        raise
        existing = self._spec(spec.name, fresh=True)
        if existing.vector_dim != spec.vector_dim:
            raise DataError(
                f"search index '{spec.name}' exists with vector dimension {existing.vector_dim}, "
                f"not {spec.vector_dim}; drop it first to change it"
            )

    def drop_index(self, name: str) -> None:
        es_index = self._name(name)
        self._specs.pop(name, None)
        with self._errors(name):
            self.client.indices.delete(index=es_index)

    def list_indexes(self) -> list[str]:
        with self._errors():
            response = self.client.indices.get_mapping(index=f"{self.index_prefix}-*")
        names = []
        for es_index, mapping in response.body.items():
            spec = spec_from_mapping(mapping)
            if spec is not None and es_index == f"{self.index_prefix}-{spec.name}":
                names.append(spec.name)
        return sorted(names)

    def describe(self, name: str) -> IndexInfo:
        spec = self._spec(name, fresh=True)
        return IndexInfo(name, self.count(name), spec.vector_dim, self.backend_name, spec.description)

    # -- documents -------------------------------------------------------------------------
    def upsert(self, index: str, documents: Iterable[Document], batch_size: int = 500) -> int:
        """Index documents by id, one bulk request per batch.

        Not atomic across batches (Elasticsearch has no transactions): a bad document fails
        its batch with :class:`DataError` and earlier batches stay written. Only the last
        batch waits for a refresh (``refresh="wait_for"``); a refresh makes everything
        indexed before it searchable, and waiting on every batch would cost up to the
        refresh interval each.
        """
        spec = self._spec(index, fresh=True)  # also stops Elasticsearch auto-creating a bare index
        es_index = self._name(index)

        def actions(batch: list[Document]) -> list[dict[str, Any]]:
            checked = (check_document(doc, spec.vector_dim) for doc in batch)
            return [index_action(es_index, doc, vector) for doc, vector, _ in checked]

        written = 0
        for _, item in self._bulk(index, (actions(batch) for batch in batched(documents, batch_size))):
            written += 1 if item.get("result") in ("created", "updated", "noop") else 0
        return written

    def delete(self, index: str, ids: Iterable[str]) -> int:
        es_index = self._name(index)
        self._spec(index, fresh=True)
        wanted = list(dict.fromkeys(ids))
        batches = (
            [{"_op_type": "delete", "_index": es_index, "_id": doc_id} for doc_id in chunk]
            for chunk in batched(wanted, 500)
        )
        return sum(1 for _, item in self._bulk(index, batches) if item.get("result") == "deleted")

    def _bulk(self, index: str, batches: Iterable[list[dict[str, Any]]]) -> Iterator[tuple[bool, dict[str, Any]]]:
        """Send batches with ``streaming_bulk``; the last one waits for the refresh."""
        batches = iter(batches)
        current = next(batches, None)
        while current is not None:
            following = next(batches, None)
            refresh = "wait_for" if following is None else None
            with self._errors(index):
                results = helpers.streaming_bulk(
                    self.client,
                    current,
                    chunk_size=max(len(current), 1),
                    raise_on_error=False,
                    max_retries=3,
                    refresh=refresh,
                )
                for ok, result in results:
                    item = next(iter(result.values()))
                    if not ok and item.get("status") != 404:
                        error = item.get("error") or {}
                        reason = error.get("reason", error) if isinstance(error, dict) else error
                        raise DataError(
                            f"Elasticsearch rejected document '{item.get('_id')}' of index '{index}': {reason}"
                        )
                    yield ok, item
            current = following

    def get(self, index: str, id: str) -> Document | None:
        es_index = self._name(index)
        with self._errors(index):
            try:
                source = self.client.get(index=es_index, id=id)["_source"]
            except elasticsearch.NotFoundError as exc:
                if _error_type(exc) == "index_not_found_exception":
                    raise
                return None
            if "vector" not in source and self._spec(index).vector_dim:
                source = self._source_with_vector(es_index, id, source)
        return Document(
            id=id,
            text=source.get("text", ""),
            vector=source.get("vector"),
            metadata=source.get("metadata") or {},
        )

    def _source_with_vector(self, es_index: str, id: str, source: dict[str, Any]) -> dict[str, Any]:
        """Elasticsearch 9.1+ may leave vectors out of ``_source``; ask for them explicitly."""
        try:
            return self.client.get(index=es_index, id=id, source_exclude_vectors=False)["_source"]
        except (TypeError, elasticsearch.BadRequestError):  # older client or server: no such option
            return source

    def count(self, index: str, filters: dict[str, Any] | None = None) -> int:
        query = count_query(filter_clauses(parse_filters(filters)))
        with self._errors(index):
            return int(self.client.count(index=self._name(index), query=query)["count"])

    # -- search ----------------------------------------------------------------------------
    def search(
        self,
        index: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | np.ndarray | None = None,
        k: int = 10,
        mode: SearchMode | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[Hit]:
        check_k(k)
        if k > MAX_K:
            raise DataError(f"k must be at most {MAX_K} on Elasticsearch, got {k}")
        mode = resolve_mode(text, vector, mode)
        clauses = filter_clauses(parse_filters(filters))
        query_vector = as_vector(vector, self._spec(index).vector_dim, "query") if mode != "bm25" else None
        window = k if mode != "hybrid" else rank_window(k)
        bm25_hits = self._bm25(index, text, window, clauses) if mode != "vector" else []
        knn_hits = self._knn(index, query_vector, window, clauses) if query_vector is not None else []
        if mode == "bm25":
            return bm25_hits
        if mode == "vector":
            return knn_hits
        # Fused here, not with Elasticsearch's `rrf` retriever: that needs a paid licence on
        # several versions, and doing it client-side gives the same fusion as the embedded backend.
        return reciprocal_rank_fusion(bm25_hits, knn_hits, k=k, rrf_k=self.rrf_k)

    def _bm25(self, index: str, text: str | None, size: int, clauses: list[dict[str, Any]]) -> list[Hit]:
        with self._errors(index):
            response = self.client.search(
                index=self._name(index),
                query=bm25_query(text or "", clauses),
                size=size,
                source=SOURCE_FIELDS,
                track_total_hits=False,
            )
        return _hits(response, "bm25_rank", bm25_score)

    def _knn(self, index: str, vector: np.ndarray, size: int, clauses: list[dict[str, Any]]) -> list[Hit]:
        with self._errors(index):
            response = self.client.search(
                index=self._name(index),
                knn=knn_query(vector, size, clauses),
                size=size,
                source=SOURCE_FIELDS,
                track_total_hits=False,
            )
        return _hits(response, "vector_rank", cosine_score)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ElasticsearchBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _hits(response: Any, leg: str, rescore: Any) -> list[Hit]:
    hits = []
    for rank, raw in enumerate(response["hits"]["hits"], start=1):
        source = raw.get("_source") or {}
        hit = Hit(raw["_id"], rescore(float(raw["_score"])), source.get("text", ""), source.get("metadata") or {})
        setattr(hit, leg, rank)
        hits.append(hit)
    return hits
