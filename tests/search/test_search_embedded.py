"""What only the embedded backend promises: atomic writes, snapshots, other processes, the config."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from services.search import Document, IndexSpec, open_search_backend
from services.search.embedded import EmbeddedSearchBackend
from services.search.memory import MemoryIndex
from suite.config import SearchConfig
from suite.errors import DataError, SuiteError


def documents(n: int, start: int = 0, dim: int = 4) -> list[Document]:
    rng = np.random.default_rng(start)
    return [
        Document(f"d{i}", f"passage {i} about topic{i % 7} and word{i}", rng.normal(size=dim), {"n": i, "g": i % 3})
        for i in range(start, start + n)
    ]


def results(backend: EmbeddedSearchBackend, index: str = "docs") -> list:
    queries = [
        {"text": "topic3 word12"},
        {"text": "passage topic1", "filters": {"g": [0, 2]}, "k": 20},
        {"vector": [1.0, -1.0, 0.5, 0.0], "k": 15},
        {"text": "topic2", "vector": [0.0, 1.0, 0.0, 1.0], "filters": {"n": {"gte": 10}}},
    ]
    return [[(hit.id, round(hit.score, 6)) for hit in backend.search(index, **query)] for query in queries]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "search"


@pytest.fixture
def store(folder: Path):
    backend = EmbeddedSearchBackend(folder)
    backend.ensure_index(IndexSpec("docs", vector_dim=4))
    backend.upsert("docs", documents(60))
    yield backend
    backend.close()


def test_open_search_backend_uses_the_data_dir(tmp_path: Path):
    backend = open_search_backend(SearchConfig(rrf_k=10), tmp_path)
    assert isinstance(backend, EmbeddedSearchBackend) and backend.rrf_k == 10
    backend.ensure_index(IndexSpec("x", vector_dim=None))
    backend.close()
    assert (tmp_path / "search" / "search.db").is_file()
    with pytest.raises(SuiteError, match="closed"):
        backend.list_indexes()


def test_failing_bulk_upsert_writes_nothing(store: EmbeddedSearchBackend, folder: Path):
    before = results(store)

    def stream():
        yield from documents(1200, start=1000)  # three batches of 500 go to the database first...
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        store.upsert("docs", stream(), batch_size=500)
    bad = [*documents(700, start=2000), Document("bad", "bad", [1.0, 2.0])]  # ...or a bad one comes late
    with pytest.raises(DataError):
        store.upsert("docs", bad, batch_size=500)
    assert store.count("docs") == 60 and store.get("docs", "d1000") is None
    assert results(store) == before
    with EmbeddedSearchBackend(folder) as fresh:  # and the database agrees
        assert fresh.count("docs") == 60 and results(fresh) == before


def test_another_process_sees_writes_and_writes_back(store: EmbeddedSearchBackend, folder: Path):
    script = textwrap.dedent(
        f"""
        from services.search import Document
        from services.search.embedded import EmbeddedSearchBackend
        backend = EmbeddedSearchBackend({str(folder)!r})
        print([hit.id for hit in backend.search("docs", text="word7")])
        backend.upsert("docs", [Document("from-child", "written by the child word7 word7", [1, 0, 0, 0])])
        backend.delete("docs", ["d7"])
        backend.close()
        """
    )
    before = store.search("docs", text="word7")  # the parent's memory index is built already
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "['d7']" and [hit.id for hit in before] == ["d7"]
    assert [hit.id for hit in store.search("docs", text="word7")] == ["from-child"]
    assert store.count("docs") == 60


def test_snapshot_reopen_equals_full_rebuild(folder: Path):
    with EmbeddedSearchBackend(folder, snapshot_min_docs=10) as writer:
        writer.ensure_index(IndexSpec("docs", vector_dim=4))
        writer.upsert("docs", documents(80))
        expected = results(writer)
    snapshots = list((folder / "snapshots").glob("*.npz"))
    assert len(snapshots) == 1  # written on close, as the index had none

    with EmbeddedSearchBackend(folder, snapshot_min_docs=10) as reader:
        assert results(reader) == expected
        # changes after the snapshot come from the rows and tombstones newer than it
        reader.upsert("docs", documents(5, start=200))
        reader.delete("docs", ["d3", "d4", "d200"])
        reader.upsert("docs", [Document("d10", "replaced passage topic3 word12", [0, 0, 1, 0], {"n": 10, "g": 1})])
        expected = results(reader)
    with EmbeddedSearchBackend(folder, snapshot_min_docs=10) as from_snapshot:
        assert results(from_snapshot) == expected
    with EmbeddedSearchBackend(folder, snapshot_min_docs=None) as rebuilt:
        assert results(rebuilt) == expected


def test_damaged_snapshot_is_ignored(folder: Path):
    with EmbeddedSearchBackend(folder, snapshot_min_docs=10) as writer:
        writer.ensure_index(IndexSpec("docs", vector_dim=4))
        writer.upsert("docs", documents(40))
        expected = results(writer)
    (snapshot,) = (folder / "snapshots").glob("*.npz")
    snapshot.write_bytes(b"not a zip file")
    with EmbeddedSearchBackend(folder, snapshot_min_docs=10) as reader:
        assert results(reader) == expected


def test_dropping_an_index_forgets_its_snapshot_and_a_new_one_starts_empty(folder: Path):
    with EmbeddedSearchBackend(folder, snapshot_min_docs=10) as backend:
        backend.ensure_index(IndexSpec("docs", vector_dim=4))
        backend.upsert("docs", documents(40))
        backend.search("docs", text="topic1")
    with EmbeddedSearchBackend(folder, snapshot_min_docs=10) as backend:
        backend.drop_index("docs")
        assert list((folder / "snapshots").glob("*.npz")) == []
        backend.ensure_index(IndexSpec("docs", vector_dim=4))
        assert backend.count("docs") == 0 and backend.search("docs", text="topic1") == []


def test_many_replacements_and_deletes_compact_without_changing_results(
    store: EmbeddedSearchBackend, folder: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("services.search.memory.COMPACT_MIN_DEAD", 10)
    for round_ in range(4):
        store.upsert("docs", documents(30, start=round_ * 5))  # replaces 25 of 30 each round
        store.delete("docs", [f"d{i}" for i in range(round_, 60, 9)])
    memory = store._states["docs"].memory
    assert isinstance(memory, MemoryIndex) and memory.n_slots < 60 + 4 * 30  # compacted on the way
    expected = results(store)
    with EmbeddedSearchBackend(folder, snapshot_min_docs=None) as rebuilt:
        assert results(rebuilt) == expected


def test_metadata_filters_follow_later_writes(store: EmbeddedSearchBackend):
    assert store.count("docs", {"g": 1}) == 20  # builds the filter column
    store.upsert("docs", [Document("d1", "moved", None, {"g": 2}), Document("new", "new", None, {"g": 1})])
    assert store.count("docs", {"g": 1}) == 20  # d1 left group 1, "new" joined it
    assert store.count("docs", {"g": 2}) == 21
    store.delete("docs", ["new"])
    assert store.count("docs", {"g": 1}) == 19


def test_ties_are_broken_by_id(folder: Path):
    with EmbeddedSearchBackend(folder) as backend:
        backend.ensure_index(IndexSpec("same", vector_dim=2))
        backend.upsert("same", [Document(f"t{i}", "identical text", [1.0, 0.0]) for i in (3, 1, 2, 0)])
        assert [hit.id for hit in backend.search("same", text="identical", k=3)] == ["t0", "t1", "t2"]
        assert [hit.id for hit in backend.search("same", vector=[1.0, 0.0], k=2)] == ["t0", "t1"]


def test_unusable_folder_is_a_suite_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SuiteError, match="cannot open the search store"):
        EmbeddedSearchBackend(blocker / "search")
