"""The embedded backend: SQLite on disk is the truth, a :class:`MemoryIndex` per index serves queries.

Files: ``<data_dir>/search/search.db`` (WAL mode). Tables ``indexes`` (one row per index,
with a ``version`` counter bumped by every committed write), ``documents`` (text,
metadata JSON, float32 vector blob, and the version that last wrote the row) and
``tombstones`` (ids deleted, with the deleting version).

Consistency between processes (an API server and the scheduler may share a folder):
before every operation the backend reads the index's ``version``; if another process
moved it on, the rows and tombstones newer than the version held in memory are applied
(a dropped and re-created index has a new ``id`` and is rebuilt whole). Writes run in
one ``BEGIN IMMEDIATE`` transaction per call, so a failing bulk upsert writes nothing,
and the memory index is changed only after the commit succeeded.

Reopening a large index would mean re-tokenising every passage, so indexes of 20,000+
documents also keep a snapshot file of their memory index (``snapshots/``, see
:mod:`services.search.snapshot`): a derived cache, loaded and then brought up to date
from the rows and tombstones newer than it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.errors import DataError, NotFoundError, SuiteError
from services.search.base import (
    Document,
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
from services.search.memory import Entry, MemoryIndex
from services.search.snapshot import SnapshotStore
from services.search.text import Tokenizer

DATABASE_NAME = "search.db"
SNAPSHOT_MIN_DOCS = 20_000
SNAPSHOT_REFRESH = 0.1  # rewrite a snapshot once this fraction of the documents changed
SQL_CHUNK = 500  # ids per IN (...) clause, well under SQLite's variable limit

SCHEMA = """
CREATE TABLE IF NOT EXISTS indexes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- never reused: a re-created index is a new id
    name TEXT NOT NULL UNIQUE,
    vector_dim INTEGER,
    description TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS documents (
    index_id INTEGER NOT NULL REFERENCES indexes(id) ON DELETE CASCADE,
    doc_id TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB,
    version INTEGER NOT NULL,
    PRIMARY KEY (index_id, doc_id)
);
CREATE INDEX IF NOT EXISTS documents_by_version ON documents(index_id, version);
CREATE TABLE IF NOT EXISTS tombstones (
    index_id INTEGER NOT NULL REFERENCES indexes(id) ON DELETE CASCADE,
    doc_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (index_id, doc_id)
);
CREATE INDEX IF NOT EXISTS tombstones_by_version ON tombstones(index_id, version);
"""

UPSERT_SQL = """
INSERT INTO documents (index_id, doc_id, text, metadata, vector, version) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (index_id, doc_id) DO UPDATE SET
    text = excluded.text, metadata = excluded.metadata, vector = excluded.vector, version = excluded.version
"""


@dataclass
class _IndexState:
    id: int
    name: str
    vector_dim: int | None
    version: int
    memory: MemoryIndex | None = None  # None: (re)build from the database on next use
    snapshot_version: int | None = None  # version of the snapshot file matching memory, if any
    changes: int = 0  # documents changed in memory since that snapshot


class EmbeddedSearchBackend:
    """BM25, exact kNN and hybrid search over SQLite-backed indexes in one folder.

    :param directory: folder of ``search.db`` (``<data_dir>/search``), created if missing.
    :param rrf_k: reciprocal-rank fusion constant for hybrid search.
    :param tokenizer: BM25 tokeniser (default: lowercase ``\\w+`` tokens minus spaCy's English stop words).
    :param bm25: BM25 parameters (default k1=1.5, b=0.75, Lucene idf).
    :param snapshot_min_docs: indexes of at least this many documents keep a snapshot file
        (``search/snapshots/``) so a reopen skips re-tokenising; None turns snapshots off.
    """

    backend_name = "embedded"

    def __init__(
        self,
        directory: Path | str,
        *,
        rrf_k: int = 60,
        tokenizer: Tokenizer | None = None,
        bm25: BM25Params | None = None,
        snapshot_min_docs: int | None = SNAPSHOT_MIN_DOCS,
    ) -> None:
        self.directory = Path(directory)
        self.snapshot_min_docs = snapshot_min_docs
        self.rrf_k = rrf_k
        self.tokenizer = tokenizer or Tokenizer()
        self.bm25_params = bm25 or BM25Params()
        self._lock = threading.RLock()
        self._states: dict[str, _IndexState] = {}
        self._snapshots = SnapshotStore(self.directory / "snapshots", self.tokenizer.fingerprint)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.directory / DATABASE_NAME, timeout=30, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._write():
                self._create_schema()
        except (OSError, sqlite3.Error) as exc:
            raise SuiteError(f"cannot open the search store in {self.directory}: {exc}") from None

    def _create_schema(self) -> None:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)

    # -- plumbing ------------------------------------------------------------------------
    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SuiteError("the search backend is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: takes SQLite's write lock up front, rolls back on any error."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several statements."""
        db = self._db
        if db.in_transaction:  # already inside a write: it sees the latest data
            yield db
            return
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    def _row(self, name: str) -> tuple[int, int | None, str, int] | None:
        return self._db.execute(
            "SELECT id, vector_dim, description, version FROM indexes WHERE name = ?", (name,)
        ).fetchone()

    def _state(self, name: str) -> _IndexState:
        """The index's state, with its memory index caught up with the database."""
        check_index_name(name)
        loaded = False
        with self._read():
            row = self._row(name)
            state = self._states.get(name)
            if row is None:
                self._states.pop(name, None)
                raise NotFoundError(f"search index '{name}' does not exist")
            index_id, vector_dim, _, version = row
            if state is None or state.id != index_id:
                state = self._states[name] = _IndexState(index_id, name, vector_dim, version)
            if state.memory is None:
                self._load(state)
                loaded = True
            elif state.version != version:
                self._catch_up(state)
        if loaded:
            self._maybe_snapshot(state)
        return state

    def _memory_options(self, state: _IndexState) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer,
            "bm25": self.bm25_params,
            "metadata_loader": lambda field: self._metadata_values(state.id, field),
        }

    def _load(self, state: _IndexState) -> None:
        """Fill memory from the newest snapshot plus later changes, or from every row."""
        (latest,) = self._db.execute("SELECT version FROM indexes WHERE id = ?", (state.id,)).fetchone()
        options = self._memory_options(state)
        loaded = None
        if self.snapshot_min_docs is not None:
            loaded = self._snapshots.load(state.id, latest, vector_dim=state.vector_dim, **options)
        if loaded is not None:
            state.memory, state.version = loaded
            state.snapshot_version, state.changes = state.version, 0
            self._catch_up(state)
            return
        memory = MemoryIndex(state.vector_dim, **options)
        cursor = self._db.execute(
            "SELECT doc_id, text, vector FROM documents WHERE index_id = ? ORDER BY doc_id", (state.id,)
        )
        memory.add_many((doc_id, text, _vector(blob), None) for doc_id, text, blob in cursor)
        state.memory, state.version = memory, latest
        state.snapshot_version, state.changes = None, len(memory)

    def _maybe_snapshot(self, state: _IndexState) -> None:
        """Write a snapshot of a large index when it has none or it changed by a tenth."""
        memory = state.memory
        if self.snapshot_min_docs is None or memory is None or len(memory) < self.snapshot_min_docs:
            return
        if state.snapshot_version is None or state.changes > SNAPSHOT_REFRESH * len(memory):
            self._snapshots.save(memory, state.id, state.version)
            state.snapshot_version, state.changes = state.version, 0

    def _catch_up(self, state: _IndexState) -> None:
        """Apply what other processes committed since ``state.version`` (inside a transaction)."""
        db = self._db
        (latest,) = db.execute("SELECT version FROM indexes WHERE id = ?", (state.id,)).fetchone()
        if latest == state.version:
            return
        deleted = [
            doc_id
            for (doc_id,) in db.execute(
                "SELECT doc_id FROM tombstones WHERE index_id = ? AND version > ?", (state.id, state.version)
            )
        ]
        memory = state.memory
        assert memory is not None
        changed = db.execute(
            "SELECT doc_id, text, vector, metadata FROM documents WHERE index_id = ? AND version > ?",
            (state.id, state.version),
        )
        keep_metadata = bool(memory.columns)  # parsed only when filter columns need the values
        count = 0

        def rows() -> Iterator[Entry]:
            nonlocal count
            for doc_id, text, blob, metadata in changed:
                count += 1
                yield doc_id, text, _vector(blob), json.loads(metadata) if keep_metadata else None

        try:
            memory.remove_many(deleted)
            memory.add_many(rows())
        except BaseException:
            state.memory = None  # half-applied: rebuild from the database next time
            raise
        state.version = latest
        state.changes += len(deleted) + count

    def _metadata_values(self, index_id: int, field: str) -> Iterator[tuple[str, Any]]:
        """Every document's value of one metadata field (for the filter columns)."""
        path = "$" + "".join(f'."{part}"' for part in field.split("."))
        cursor = self._db.execute(
            "SELECT doc_id, json_type(metadata, ?), json_extract(metadata, ?) FROM documents WHERE index_id = ?",
            (path, path, index_id),
        )
        for doc_id, kind, value in cursor:
            if kind is None or kind == "null":
                continue
            if kind in ("true", "false"):
                value = kind == "true"
            elif kind in ("array", "object"):
                value = json.loads(value)
            yield doc_id, value

    def _locked_state(self, db: sqlite3.Connection, name: str) -> _IndexState:
        """Inside a write transaction: the index's state, caught up under the write lock.

        Holding SQLite's write lock, nobody else can commit, so the version read here plus
        one is exactly the version this write commits.
        """
        state = self._state(name)
        assert db.in_transaction
        return state

    # -- index management ------------------------------------------------------------------
    def ensure_index(self, spec: IndexSpec) -> None:
        check_spec(spec)
        with self._lock, self._write() as db:
            row = self._row(spec.name)
            if row is None:
                db.execute(
                    "INSERT INTO indexes (name, vector_dim, description) VALUES (?, ?, ?)",
                    (spec.name, spec.vector_dim, spec.description),
                )
            elif row[1] != spec.vector_dim:
                raise DataError(
                    f"search index '{spec.name}' exists with vector dimension {row[1]}, "
                    f"not {spec.vector_dim}; "
                    "drop it first to change it"
                )
            elif spec.description and row[2] != spec.description:
                db.execute("UPDATE indexes SET description = ? WHERE id = ?", (spec.description, row[0]))

    def drop_index(self, name: str) -> None:
        check_index_name(name)
        with self._lock:
            with self._write() as db:
                row = self._row(name)
                if row is None:
                    raise NotFoundError(f"search index '{name}' does not exist")
                db.execute("DELETE FROM indexes WHERE id = ?", (row[0],))
            self._states.pop(name, None)
            self._snapshots.remove(row[0])

    def list_indexes(self) -> list[str]:
        with self._lock:
            return [name for (name,) in self._db.execute("SELECT name FROM indexes ORDER BY name")]

    def describe(self, name: str) -> IndexInfo:
        check_index_name(name)
        with self._lock, self._read() as db:
            row = self._row(name)
            if row is None:
                raise NotFoundError(f"search index '{name}' does not exist")
            (documents,) = db.execute("SELECT COUNT(*) FROM documents WHERE index_id = ?", (row[0],)).fetchone()
            return IndexInfo(name, documents, row[1], self.backend_name, row[2])

    # -- documents -------------------------------------------------------------------------
    def upsert(self, index: str, documents: Iterable[Document], batch_size: int = 500) -> int:
        """Insert or replace documents by id; all of them or, on any error, none."""
        with self._lock:
            self._state(index)  # a first load happens here, not while holding the write lock
            with self._write() as db:
                state = self._locked_state(db, index)
                memory = state.memory
                assert memory is not None
                version = state.version + 1
                staged: list[tuple[str, str, np.ndarray | None, dict | None]] = []
                keep_metadata = bool(memory.columns)
                for batch in batched(documents, batch_size):
                    rows = []
                    for doc, vector, metadata_json in (check_document(doc, state.vector_dim) for doc in batch):
                        blob = None if vector is None else vector.astype("<f4").tobytes()
                        rows.append((state.id, doc.id, doc.text, metadata_json, blob, version))
                        metadata = json.loads(metadata_json) if keep_metadata else None
                        staged.append((doc.id, doc.text, vector, metadata))
                    db.executemany(UPSERT_SQL, rows)
                    db.executemany(
                        "DELETE FROM tombstones WHERE index_id = ? AND doc_id = ?",
                        [(r[0], r[1]) for r in rows],
                    )
                if not staged:
                    return 0
                db.execute("UPDATE indexes SET version = ? WHERE id = ?", (version, state.id))
            self._apply(state, version, len(staged), lambda: memory.add_many(staged))
            return len(staged)

    def delete(self, index: str, ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed."""
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            self._state(index)  # a first load happens here, not while holding the write lock
            with self._write() as db:
                state = self._locked_state(db, index)
                version = state.version + 1
                removed: list[str] = []
                for chunk in batched(wanted, SQL_CHUNK):
                    marks = ",".join("?" * len(chunk))
                    removed += [
                        doc_id
                        for (doc_id,) in db.execute(
                            f"DELETE FROM documents WHERE index_id = ? AND doc_id IN ({marks}) RETURNING doc_id",
                            (state.id, *chunk),
                        ).fetchall()
                    ]
                if not removed:
                    return 0
                db.executemany(
                    "INSERT INTO tombstones (index_id, doc_id, version) VALUES (?, ?, ?) "
                    "ON CONFLICT (index_id, doc_id) DO UPDATE SET version = excluded.version",
                    [(state.id, doc_id, version) for doc_id in removed],
                )
                db.execute("UPDATE indexes SET version = ? WHERE id = ?", (version, state.id))
            memory = state.memory
            assert memory is not None
            self._apply(state, version, len(removed), lambda: memory.remove_many(removed))
            return len(removed)

    @staticmethod
    def _apply(state: _IndexState, version: int, changed: int, change: Any) -> None:
        """Mirror a committed write in memory; if that fails, rebuild from the database later."""
        try:
            change()
        except BaseException:
            state.memory = None
            raise
        state.version = version
        state.changes += changed

    def get(self, index: str, id: str) -> Document | None:
        with self._lock:
            state = self._state(index)
            row = self._db.execute(
                "SELECT text, metadata, vector FROM documents WHERE index_id = ? AND doc_id = ?",
                (state.id, id),
            ).fetchone()
        if row is None:
            return None
        text, metadata, blob = row
        vector = None if blob is None else np.frombuffer(blob, dtype="<f4").copy()  # as given, not normalised
        return Document(id=id, text=text, vector=vector, metadata=json.loads(metadata))

    def count(self, index: str, filters: dict[str, Any] | None = None) -> int:
        conditions = parse_filters(filters)
        with self._lock:
            memory = self._state(index).memory
            assert memory is not None
            return memory.count(conditions)

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
        """Best ``k`` documents by BM25, cosine similarity or their reciprocal-rank fusion."""
        check_k(k)
        mode = resolve_mode(text, vector, mode)
        conditions = parse_filters(filters)
        with self._lock:
            state = self._state(index)
            memory = state.memory
            assert memory is not None
            query_vector = as_vector(vector, state.vector_dim, "query") if mode != "bm25" else None
            mask = memory.filter_mask(conditions)
            window = k if mode != "hybrid" else rank_window(k)
            bm25 = memory.bm25(text, window, mask) if mode != "vector" else []
            knn = memory.knn(query_vector, window, mask) if query_vector is not None else []
            stored = self._fetch(state.id, [doc_id for doc_id, _ in bm25 + knn])
        bm25_hits = _hits(bm25, stored, "bm25_rank")
        knn_hits = _hits(knn, stored, "vector_rank")
        if mode == "bm25":
            return bm25_hits
        if mode == "vector":
            return knn_hits
        return reciprocal_rank_fusion(bm25_hits, knn_hits, k=k, rrf_k=self.rrf_k)

    def _fetch(self, index_id: int, ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for chunk in batched(dict.fromkeys(ids), SQL_CHUNK):
            marks = ",".join("?" * len(chunk))
            for doc_id, text, metadata in self._db.execute(
                f"SELECT doc_id, text, metadata FROM documents WHERE index_id = ? AND doc_id IN ({marks})",
                (index_id, *chunk),
            ):
                found[doc_id] = (text, json.loads(metadata))
        return found

    def close(self) -> None:
        """Close the database; large indexes changed since their snapshot get a new one."""
        with self._lock:
            for state in self._states.values():
                self._maybe_snapshot(state)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._states.clear()

    def __enter__(self) -> EmbeddedSearchBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f4")


def _hits(ranked: list[tuple[str, float]], stored: dict[str, tuple[str, dict[str, Any]]], leg: str) -> list[Hit]:
    """Ranked ids to hits; a document deleted meanwhile by another process is skipped."""
    hits = []
    for doc_id, score in ranked:
        if doc_id in stored:
            text, metadata = stored[doc_id]
            hits.append(Hit(doc_id, score, text, metadata, **{leg: len(hits) + 1}))
    return hits
