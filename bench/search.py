"""Search: the embedded backend and its MemoryIndex against rank_bm25, bm25s and brute-force numpy.

Passages: the distinct sentences of BANKING77 and Financial PhraseBank (training splits);
beyond those, each further passage is one of them with about a third of its words
replaced by words drawn from the corpus's own word frequencies (a Zipf-like law), so
lengths and vocabulary stay realistic as the collection grows. Queries: sentences of the
two test splits. Every side gets the same tokens (the suite's ``Tokenizer``: lowercase
``\\w+`` minus English stop words); the peers' indexing and query times include that
tokenising, as ours do.

Scoring that is meant to be the same, compared by top-10 overlap:
- the suite's BM25 (Lucene idf) and ``bm25s`` with ``method="lucene"`` (scores differ by
  the constant factor k1 + 1);
- a MemoryIndex with Robertson idf and ``rank_bm25.BM25Okapi`` (equal except for terms in
  more than half of the passages, which rank_bm25 floors);
- exact kNN (``MemoryIndex.knn``) and a numpy matrix product + argpartition, over random
  unit vectors (the speed of exact kNN does not depend on what the vectors mean).

Each system is built and queried in a forked child process; its memory is the growth of
that child's resident set (RSS) from before the build to after it (psutil, else /proc).

    python -m bench.search                       # 10,000, 100,000 and 1,000,000 passages
    python -m bench.search --sizes 2000 --queries 20   # smoke run
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import statistics
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import command_line, load_labeled, percentile, rss_mb, table, write_results

K = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="passages per run, comma-separated")
    parser.add_argument("--queries", type=int, default=500, help="queries timed per system")
    parser.add_argument(
        "--slow-queries", type=int, default=100, help="queries for rank_bm25 (pure Python per document)"
    )
    parser.add_argument(
        "--rank-bm25-max", type=int, default=100_000, help="largest size rank_bm25 runs at (its memory grows fast)"
    )
    parser.add_argument("--dim", type=int, default=384, help="vector dimension of the kNN part (0: skip it)")
    parser.add_argument("--no-backend", action="store_true", help="skip the SQLite-backed embedded backend")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads for both sides (default: all cores)")
    return parser.parse_args()


# -- data ---------------------------------------------------------------------------------------------
def base_sentences() -> tuple[list[str], list[str]]:
    passages = [row.text for name in ("banking77", "financial_phrasebank") for row in load_labeled(name, "train")]
    queries = [row.text for name in ("banking77", "financial_phrasebank") for row in load_labeled(name, "test")]
    return list(dict.fromkeys(passages)), list(dict.fromkeys(queries))


def make_passages(base: list[str], size: int, seed: int = 7) -> list[str]:
    """``size`` passages: the real sentences first, then perturbed copies of them."""
    if size <= len(base):
        return random.Random(seed).sample(base, size)
    words_of = [sentence.split() for sentence in base]
    counts = Counter(word for words in words_of for word in words)
    vocabulary = list(counts)
    weights = np.array([counts[word] for word in vocabulary], dtype=np.float64)
    rng = np.random.default_rng(seed)
    extra = size - len(base)
    picks = rng.integers(0, len(base), extra)
    lengths = np.array([len(words_of[i]) for i in picks])
    replace = rng.random(int(lengths.sum())) < 1 / 3
    fresh = rng.choice(len(vocabulary), int(replace.sum()), p=weights / weights.sum())
    passages = list(base)
    cursor = fresh_cursor = 0
    for pick, length in zip(picks, lengths, strict=True):
        words = list(words_of[pick])
        for position in range(length):
            if replace[cursor + position]:
                words[position] = vocabulary[fresh[fresh_cursor]]
                fresh_cursor += 1
        cursor += length
        passages.append(" ".join(words))
    return passages


# -- measuring ----------------------------------------------------------------------------------------
@dataclass
class Measured:
    """One system at one size: build time, memory growth, query latencies and top-10 ids.

    ``ties``: for a reference system, each query's top 10 plus every document scoring the
    same as the 10th, so that another system's different choice among equals still agrees.
    """

    name: str
    build_seconds: float = 0.0
    memory_mb: float = 0.0
    latencies: list[float] = field(default_factory=list)
    results: list[list[str]] = field(default_factory=list)
    ties: list[set[str]] = field(default_factory=list)


def measure(
    name: str,
    build: Callable[[], Any],
    search: Callable[[Any, Any], list[str]],
    queries: Sequence[Any],
    ranked: Callable[[Any, Any], list[tuple[str, float]]] | None = None,
    close: Callable[[Any], None] | None = None,
) -> Measured:
    """Build and query one system in a forked child, so that its memory is measured on its own
    (nothing freed by an earlier system is reused) and released when it ends."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        try:
            send.send(("ok", _measure_here(name, build, search, queries, ranked, close)))
        except BaseException:
            send.send(("error", traceback.format_exc()))

    process = context.Process(target=child)
    process.start()
    status, value = receive.recv()
    process.join()
    if status != "ok":
        raise RuntimeError(f"{name} failed:\n{value}")
    return value


def _measure_here(name, build, search, queries, ranked, close) -> Measured:
    measured = Measured(name)
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    handle = build()
    measured.build_seconds = time.perf_counter() - started
    gc.collect()
    measured.memory_mb = rss_mb() - before
    for query in queries:
        started = time.perf_counter()
        ids = search(handle, query)
        measured.latencies.append(time.perf_counter() - started)
        measured.results.append(ids)
    if ranked is not None:  # not timed: the reference's ties at the 10th place
        for query in queries:
            hits = ranked(handle, query)
            boundary = hits[K - 1][1] if len(hits) >= K else float("-inf")
            measured.ties.append({doc for doc, score in hits if score >= boundary - 1e-6 * abs(boundary)})
    if close is not None:
        close(handle)
    return measured


def overlap(reference: Measured, other: Measured) -> float:
    """Mean share of the other system's top 10 that is in the reference's top 10 (ties included)."""
    pairs = [(allowed, ids) for allowed, ids in zip(reference.ties, other.results, strict=False) if ids]
    if not pairs:
        return float("nan")
    return statistics.mean(len(set(ids) & allowed) / len(ids) for allowed, ids in pairs)


def row(size: int, count: int, measured: Measured, reference: Measured | None = None) -> list[Any]:
    ms = [s * 1000 for s in measured.latencies]
    return [
        f"{size:,}",
        measured.name,
        f"{count / measured.build_seconds:,.0f}",
        f"{measured.build_seconds:.1f}",
        f"{measured.memory_mb:,.0f}",
        f"{statistics.median(ms):.2f}" if ms else "-",
        f"{percentile(ms, 99):.2f}" if ms else "-",
        f"{overlap(reference, measured):.3f}" if reference else "-",
    ]


# -- BM25 -----------------------------------------------------------------------------------------------
def bm25_run(
    size: int, passages: list[str], queries: list[str], args, scratch: Path
) -> tuple[list[list[Any]], list[str]]:
    from services.search import Document, IndexSpec
    from services.search.bm25 import BM25Params
    from services.search.embedded import EmbeddedSearchBackend
    from services.search.text import Tokenizer

    tokenizer = Tokenizer()
    ids = [f"p{i}" for i in range(len(passages))]
    rows: list[list[Any]] = []
    notes: list[str] = []
    wide = 50 * K  # enough to see every tie at the 10th place, even among near-duplicate passages

    print("  suite MemoryIndex")
    ours = measure(
        "suite MemoryIndex (Lucene idf)",
        lambda: _memory_index(tokenizer, BM25Params(), ids, passages),
        lambda index, q: [doc for doc, _ in index.bm25(q, K)],
        queries,
        ranked=lambda index, q: index.bm25(q, wide),
    )
    rows.append(row(size, len(passages), ours))
    print("  bm25s")
    peer = measure(
        "bm25s (lucene)",
        lambda: _bm25s_index(tokenizer, passages),
        lambda retriever, q: _bm25s_search(retriever, tokenizer, q),
        queries,
    )
    rows.append(row(size, len(passages), peer, ours))
    if not args.no_backend:
        print("  suite embedded backend")

        def build_backend():
            backend = EmbeddedSearchBackend(scratch / f"search-{size}", snapshot_min_docs=None)
            backend.ensure_index(IndexSpec("bench", vector_dim=None))
            documents = (Document(i, text) for i, text in zip(ids, passages, strict=True))
            backend.upsert("bench", documents, batch_size=5000)
            return backend

        backend = measure(
            "suite embedded backend (SQLite + memory)",
            build_backend,
            lambda handle, q: [hit.id for hit in handle.search("bench", text=q, k=K)],
            queries,
            close=lambda handle: handle.close(),
        )
        rows.append(row(size, len(passages), backend, ours))

    if size <= args.rank_bm25_max:
        slow = queries[: args.slow_queries]
        print("  suite MemoryIndex, Robertson idf")
        robertson = measure(
            "suite MemoryIndex (Robertson idf)",
            lambda: _memory_index(tokenizer, BM25Params(idf="robertson"), ids, passages),
            lambda index, q: [doc for doc, _ in index.bm25(q, K)],
            slow,
            ranked=lambda index, q: index.bm25(q, wide),
        )
        rows.append(row(size, len(passages), robertson))
        print("  rank_bm25")
        okapi = measure(
            "rank_bm25 BM25Okapi",
            lambda: _okapi_index(tokenizer, passages),
            lambda index, q: _okapi_search(index, tokenizer, ids, q),
            slow,
        )
        rows.append(row(size, len(passages), okapi, robertson))
    else:
        notes.append(f"rank_bm25 skipped at {size:,} passages (above --rank-bm25-max {args.rank_bm25_max:,}).")
    return rows, notes


def _memory_index(tokenizer, params, ids, passages):
    from services.search.memory import MemoryIndex

    index = MemoryIndex(None, tokenizer=tokenizer, bm25=params)
    index.add_many([(i, text, None, None) for i, text in zip(ids, passages, strict=True)])
    return index


def _bm25s_index(tokenizer, passages):
    import bm25s

    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(tokenizer.tokenize_many(passages), show_progress=False)
    return retriever


def _bm25s_search(retriever, tokenizer, query: str) -> list[str]:
    tokens = [token for token in tokenizer(query) if token in retriever.vocab_dict]
    if not tokens:
        return []
    documents, scores = retriever.retrieve([tokens], k=K, show_progress=False, n_threads=1)
    return [f"p{int(d)}" for d, s in zip(documents[0], scores[0], strict=True) if s > 0]


def _okapi_index(tokenizer, passages):
    from rank_bm25 import BM25Okapi

    return BM25Okapi(tokenizer.tokenize_many(passages), k1=1.5, b=0.75)


def _okapi_search(okapi, tokenizer, ids: list[str], query: str) -> list[str]:
    scores = okapi.get_scores(tokenizer(query))
    best = np.argpartition(-scores, K)[:K] if scores.size > K else np.arange(scores.size)
    return [ids[i] for i in sorted(best, key=lambda i: (-scores[i], ids[i])) if scores[i] > 0]


# -- kNN -----------------------------------------------------------------------------------------------
def knn_run(size: int, dim: int, n_queries: int) -> list[list[Any]]:
    rng = np.random.default_rng(size)
    vectors = rng.standard_normal((size, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = list(rng.standard_normal((n_queries, dim), dtype=np.float32))
    ids = [f"v{i}" for i in range(size)]

    def build_ours():
        from services.search.memory import MemoryIndex

        index = MemoryIndex(dim)
        index.add_many([(i, "", vectors[n], None) for n, i in enumerate(ids)])
        return index

    def brute_force(matrix: np.ndarray, query: np.ndarray) -> list[str]:
        scores = matrix @ (query / np.linalg.norm(query))
        best = np.argpartition(-scores, K)[:K]
        return [ids[i] for i in best[np.argsort(-scores[best])]]

    print("  suite MemoryIndex.knn")
    ours = measure(
        "suite MemoryIndex.knn",
        build_ours,
        lambda index, q: [doc for doc, _ in index.knn(q, K)],
        queries,
        ranked=lambda index, q: index.knn(q, K),
    )
    print("  numpy")
    # The peer keeps its own copy of the (already unit) vectors, as a real one would.
    peer = measure("numpy brute force", lambda: np.array(vectors, copy=True), brute_force, queries)
    return [row(size, size, ours), row(size, size, peer, ours)]


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)  # kept by the forked children
    base, query_pool = base_sentences()
    queries = random.Random(3).sample(query_pool, min(args.queries, len(query_pool)))
    headers = [
        "passages",
        "system",
        "indexed docs/s",
        "build s",
        "RSS growth MiB",
        "query median ms",
        "query p99 ms",
        "top-10 overlap",
    ]
    bm25_rows: list[list[Any]] = []
    knn_rows: list[list[Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as scratch:
        for size in sizes:
            print(f"{size:,} passages: generating")
            passages = make_passages(base, size)
            print(f"{size:,} passages: BM25")
            rows, more = bm25_run(size, passages, queries, args, Path(scratch))
            bm25_rows += rows
            notes += more
            del passages
            if args.dim:
                print(f"{size:,} vectors: kNN")
                knn_rows += knn_run(size, args.dim, len(queries))
    body = [
        f"Passages: the {len(base):,} distinct training sentences of BANKING77 and Financial PhraseBank, then "
        "perturbed copies (a third of the words redrawn from the corpus's word frequencies) up to each size. "
        f"Queries: {len(queries)} test sentences of the two sets ({min(args.slow_queries, len(queries))} for "
        "rank_bm25 and the Robertson-idf index it is compared with); k = 10. "
        "Top-10 overlap: the share of a system's top 10 that is also in the top 10 of the suite's index with "
        "the same scoring (the row above it), counting documents tied with that index's 10th as agreeing. "
        "Each system runs in a forked child; RSS growth is that child's, from before the build to after it.",
        "",
        "BM25:",
        "",
        table(headers, bm25_rows),
    ]
    if notes:
        body += ["", *notes]
    if knn_rows:
        body += [
            "",
            f"Exact kNN over random unit vectors of dimension {args.dim} (cosine; the build of the MemoryIndex "
            "copies and normalises the vectors; the numpy side copies them):",
            "",
            table(headers, knn_rows),
        ]
    write_results("Search", command_line("bench.search"), "\n".join(body))


if __name__ == "__main__":
    main()
