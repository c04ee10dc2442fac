"""The knowledge base: passages from FAQ CSV, Markdown and text files, indexed in the shared search.

Passages go to the search index (hybrid BM25 + dense). A snapshot of what was indexed
(passages, their vectors, the retrieval calibration) is kept in the plugin's folder: it
makes re-indexing incremental (stale passages are deleted) and gives every hit an
absolute cosine similarity, which the rank-based hybrid score cannot give.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plugins.chatbot.calibration import calibrate_retrieval
from plugins.chatbot.data import csv_rows, load_retrieval_eval, read_text_file
from services.search import Document, IndexSpec
from suite.errors import DataError

if TYPE_CHECKING:
    from suite.context import SuiteContext

log = logging.getLogger(__name__)
KB_FILE_TYPES = (".csv", ".md", ".markdown", ".txt")
SNAPSHOT_FILE = "knowledge.npz"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
MARKDOWN_MARKS = re.compile(r"(\*\*|__|`)")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])")


@dataclass(frozen=True)
class Passage:
    """One retrievable unit: an FAQ entry or one section (or part of one) of a document."""

    id: str
    title: str
    body: str  # what an answer quotes (an FAQ's answer, a section's text)
    doc: str  # the document's name: its file name without extension
    source: str  # the file it came from
    kind: str  # "faq" | "doc"
    url: str | None = None

    @property
    def text(self) -> str:
        """What is indexed: the title (a question, a heading) helps both BM25 and the embedding."""
        return f"{self.title}\n{self.body}"

    def metadata(self) -> dict[str, Any]:
        data = {"doc": self.doc, "title": self.title, "source": self.source, "kind": self.kind}
        return {**data, "url": self.url} if self.url else data


@dataclass(frozen=True)
class RetrievedPassage:
    passage: Passage
    score: float  # the search's hybrid (RRF) score: orders hits
    similarity: float  # cosine of question and passage: says whether it answers at all


@dataclass
class IndexReport:
    files: int
    passages: int
    removed: int
    index: str
    retrieval_threshold: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)


# -- reading passages ---------------------------------------------------------------------
def knowledge_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KB_FILE_TYPES))
        elif path.is_file():
            if path.suffix.lower() not in KB_FILE_TYPES:
                raise DataError(f"{path}: unsupported knowledge file (use {', '.join(KB_FILE_TYPES)})")
            files.append(path)
        else:
            raise DataError(f"{path}: knowledge file or folder not found")
    return files


def load_passages(paths: Sequence[Path], max_chars: int = 1200) -> list[Passage]:
    """Every passage of the given files and folders, in a stable order."""
    passages: list[Passage] = []
    for path in knowledge_files(paths):
        suffix = path.suffix.lower()
        if suffix == ".csv":
            passages.extend(faq_passages(path))
        else:
            markdown = suffix in (".md", ".markdown")
            passages.extend(document_passages(path, read_text_file(path), markdown=markdown, max_chars=max_chars))
    return passages


def _passage_id(source: Path, *parts: str) -> str:
    """Stable while the content is unchanged, so re-indexing only touches what changed."""
    digest = hashlib.sha1("\x1f".join([source.name, *parts]).encode()).hexdigest()[:16]
    return f"{source.stem[:40]}-{digest}"


def faq_passages(path: Path) -> list[Passage]:
    """One passage per row of an FAQ CSV: ``question,answer`` (optional ``url``)."""
    passages = []
    for line, row in csv_rows(path, ("question", "answer")):
        if not row["question"] or not row["answer"]:
            raise DataError(f"{path}:{line}: empty question or answer")
        passages.append(
            Passage(
                id=_passage_id(path, row["question"], row["answer"]),
                title=row["question"],
                body=row["answer"],
                doc=path.stem,
                source=str(path),
                kind="faq",
                url=row.get("url") or None,
            )
        )
    return passages


def document_passages(path: Path, text: str, *, markdown: bool, max_chars: int) -> list[Passage]:
    """Sections split at headings (Markdown), then paragraphs grouped up to ``max_chars``."""
    doc_title = path.stem.replace("-", " ").replace("_", " ").capitalize()
    sections: list[tuple[str, list[str]]] = [(doc_title, [])]
    headings: list[str] = []
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            sections[-1][1].append(clean_markdown(" ".join(paragraph)) if markdown else " ".join(paragraph))
            paragraph.clear()

    in_fence = False
    for line in text.splitlines():
        if markdown and line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence  # a "# comment" in a code block is no heading
            continue
        heading = HEADING.match(line) if markdown and not in_fence else None
        if heading:
            end_paragraph()
            level = len(heading.group(1))
            headings = headings[: level - 1] + [clean_markdown(heading.group(2))]
            if level == 1:
                doc_title = headings[0]
            sections.append((" › ".join(headings[-2:]) if len(headings) > 1 else headings[0], []))
        elif line.strip():
            paragraph.append(line.strip())
        else:
            end_paragraph()
    end_paragraph()

    passages = []
    for title, paragraphs in sections:
        for number, body in enumerate(group_paragraphs(paragraphs, max_chars)):
            passages.append(
                Passage(
                    id=_passage_id(path, title, str(number), body),
                    title=title,
                    body=body,
                    doc=path.stem,
                    source=str(path),
                    kind="doc",
                )
            )
    return passages


def clean_markdown(text: str) -> str:
    return MARKDOWN_MARKS.sub("", MARKDOWN_LINK.sub(r"\1", text)).strip()


def group_paragraphs(paragraphs: Iterable[str], max_chars: int) -> list[str]:
    """Join paragraphs into passages of at most ``max_chars``; a longer paragraph is split at sentences."""
    pieces: list[str] = []
    for paragraph in paragraphs:
        pieces.extend([paragraph] if len(paragraph) <= max_chars else SENTENCE_END.split(paragraph))
    groups: list[str] = []
    for piece in pieces:
        if groups and len(groups[-1]) + 1 + len(piece) <= max_chars:
            groups[-1] = f"{groups[-1]}\n{piece}"
        else:
            groups.append(piece[: max_chars * 2])
    return groups


# -- the snapshot -------------------------------------------------------------------------
@dataclass
class Snapshot:
    """What was last indexed: passages (by id), their vectors, and the retrieval calibration."""

    passages: dict[str, Passage]
    vectors: np.ndarray  # rows in the order of ``passages``
    meta: dict[str, Any]
    rows: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {pid: row for row, pid in enumerate(self.passages)}

    def vector(self, passage_id: str) -> np.ndarray | None:
        row = self.rows.get(passage_id)
        return None if row is None else self.vectors[row]

    def save(self, path: Path) -> None:
        payload = {"meta": self.meta, "passages": [asdict(p) for p in self.passages.values()]}
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".knowledge.", suffix=".npz")
        os.close(handle)
        try:
            np.savez(temp, vectors=self.vectors.astype(np.float32), payload=np.array(json.dumps(payload)))
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        with np.load(path, allow_pickle=False) as data:
            payload = json.loads(str(data["payload"]))
            vectors = data["vectors"]
        passages = {p["id"]: Passage(**p) for p in payload["passages"]}
        return cls(passages=passages, vectors=vectors, meta=payload["meta"])


_snapshots: dict[Path, tuple[float, Snapshot]] = {}
_snapshot_lock = threading.Lock()


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot at ``path``, cached until the file changes; None if there is none."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    with _snapshot_lock:
        cached = _snapshots.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
    try:
        snapshot = Snapshot.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable knowledge snapshot %s: %s", path, exc)
        return None
    with _snapshot_lock:
        _snapshots[path] = (mtime, snapshot)
    return snapshot


# -- the knowledge base -------------------------------------------------------------------
class KnowledgeBase:
    """Indexes passages into the shared search service and retrieves them for a question."""

    def __init__(self, ctx: SuiteContext, index: str, *, top_k: int = 5) -> None:
        self.ctx = ctx
        self.index = index
        self.top_k = top_k
        self.snapshot_path = ctx.plugin_dir("chatbot") / SNAPSHOT_FILE

    @property
    def snapshot(self) -> Snapshot | None:
        return read_snapshot(self.snapshot_path)

    def spec(self) -> IndexSpec:
        return IndexSpec(self.index, vector_dim=embedding_dimension(self.ctx), description="chatbot knowledge base")

    def build(
        self,
        paths: Sequence[Path],
        *,
        max_chars: int = 1200,
        eval_queries: Sequence[tuple[str, str | None]] = (),
        fallback_threshold: float = 0.35,
    ) -> IndexReport:
        """(Re)index the passages of ``paths``; calibrate the retrieval threshold on ``eval_queries``."""
        files = knowledge_files(paths)
        passages = load_passages(files, max_chars=max_chars)
        if not passages:
            raise DataError(f"no passages found in {', '.join(map(str, paths))}")
        passages = list({p.id: p for p in passages}.values())  # identical passages index once
        embedder = self.ctx.embedder()
        vectors = embedder.encode([p.text for p in passages])
        previous = self.snapshot
        search = self.ctx.search
        spec = IndexSpec(self.index, vector_dim=int(vectors.shape[1]), description="chatbot knowledge base")
        if (
            previous is None
            or previous.meta.get("embedder") != embedder.model_path
            or previous.vectors.shape[1:] != vectors.shape[1:]
        ):
            if self.index in search.list_indexes():
                search.drop_index(self.index)  # no record of what is in it, or vectors from another model
            previous = None
        search.ensure_index(spec)
        search.upsert(
            self.index,
            [Document(p.id, p.text, vector, p.metadata()) for p, vector in zip(passages, vectors, strict=True)],
        )
        stale = sorted(set(previous.passages) - {p.id for p in passages}) if previous else []
        if stale:
            search.delete(self.index, stale)
        snapshot = Snapshot(
            {p.id: p for p in passages}, vectors, {"embedder": embedder.model_path, "index": self.index}
        )
        threshold, source, details = None, None, {}
        if eval_queries:
            threshold, source, details = self._calibrate(snapshot, eval_queries, fallback_threshold)
            snapshot.meta["retrieval_calibration"] = {"threshold": threshold, "source": source, **details}
        snapshot.save(self.snapshot_path)
        return IndexReport(len(files), len(passages), len(stale), self.index, threshold, {"source": source, **details})

    def _calibrate(
        self, snapshot: Snapshot, queries: Sequence[tuple[str, str | None]], fallback: float
    ) -> tuple[float, str, dict[str, Any]]:
        vectors = self.ctx.embedder().encode([query for query, _ in queries])
        in_scores, out_scores, found = [], [], 0
        for (query, doc), vector in zip(queries, vectors, strict=True):
            hits = self._retrieve(query, vector, snapshot)
            best = max((hit.similarity for hit in hits), default=-1.0)
            if doc is None:
                out_scores.append(best)
            else:
                in_scores.append(best)
                found += any(hit.passage.doc == doc for hit in hits[:3])
        threshold, source, details = calibrate_retrieval(np.array(in_scores), np.array(out_scores), fallback=fallback)
        if in_scores:
            details["in_kb_doc_found_top3"] = found / len(in_scores)
        return threshold, source, details

    def calibration(self) -> dict[str, Any] | None:
        snapshot = self.snapshot
        return snapshot.meta.get("retrieval_calibration") if snapshot else None

    def retrieve(self, question: str, vector: np.ndarray | None = None) -> list[RetrievedPassage]:
        """The best passages for ``question``, in hybrid order, each with its cosine similarity."""
        if vector is None:
            vector = self.ctx.embedder().encode_one(question)
        return self._retrieve(question, vector, self.snapshot)

    def _retrieve(self, question: str, vector: np.ndarray, snapshot: Snapshot | None) -> list[RetrievedPassage]:
        hits = self.ctx.search.search(self.index, text=question, vector=vector, k=self.top_k, mode="hybrid")
        results = []
        for hit in hits:
            known = snapshot.passages.get(hit.id) if snapshot else None
            passage_vector = snapshot.vector(hit.id) if known else None
            if passage_vector is None:  # indexed by another process since our snapshot
                document = self.ctx.search.get(self.index, hit.id)
                passage_vector = (
                    np.asarray(document.vector, dtype=np.float32) if document and document.vector is not None else None
                )
            similarity = float(np.dot(vector, passage_vector)) if passage_vector is not None else 0.0
            results.append(RetrievedPassage(known or passage_from_hit(hit), float(hit.score), similarity))
        return results


def passage_from_hit(hit: Any) -> Passage:
    meta = hit.metadata or {}
    title = str(meta.get("title") or "")
    body = hit.text[len(title) + 1 :] if title and hit.text.startswith(title + "\n") else hit.text
    return Passage(
        id=hit.id,
        title=title,
        body=body,
        doc=str(meta.get("doc") or ""),
        source=str(meta.get("source") or ""),
        kind=str(meta.get("kind") or "doc"),
        url=meta.get("url"),
    )


def embedding_dimension(ctx: SuiteContext) -> int:
    """The embedder's dimension from its config.json, so declaring the index loads no model."""
    from services.backbone import resolve_backbone

    config = Path(resolve_backbone(ctx.settings.embeddings.model)) / "config.json"
    try:
        return int(json.loads(config.read_text(encoding="utf-8"))["hidden_size"])
    except (OSError, ValueError, KeyError):
        return int(ctx.embedder().dimension)


def load_eval_queries(path: Path | None) -> list[tuple[str, str | None]]:
    return load_retrieval_eval(path) if path else []
