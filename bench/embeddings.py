"""Sentence embeddings: the suite's Embedder against sentence-transformers' ``encode`` on the same model.

Texts are distinct sentences of BANKING77 and Financial PhraseBank (training splits),
in three workloads: N sentences; N texts of 10 sentences each (10x longer, truncated
at the model's 256 tokens by both); and 10N sentences. Both sides use the same batch
size, the CPU, and no cache (the Embedder's disk cache is off). Reported: sentences/s
and the largest absolute difference between the two sets of vectors (target 1e-5).

    python -m bench.embeddings
    python -m bench.embeddings --sentences 40 --batch-size 16   # smoke run
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np

from bench.common import add_thread_option, command_line, load_labeled, ratio, sample, set_threads, table, write_results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="encoder for both sides (default all-MiniLM-L6-v2)")
    parser.add_argument("--sentences", type=int, default=1000, help="N: sentences of the first workload")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="for both sides (sentence-transformers' own default is 32)"
    )
    parser.add_argument("--max-length", type=int, default=256)
    add_thread_option(parser)
    return parser.parse_args()


def sentence_pool() -> list[str]:
    texts = [row.text for name in ("banking77", "financial_phrasebank") for row in load_labeled(name, "train")]
    return list(dict.fromkeys(texts))  # distinct: the Embedder encodes a repeated text once


def workloads(pool: list[str], n: int) -> list[tuple[str, list[str]]]:
    many = sample(pool, 10 * n, seed=1)
    if len(many) < 10 * n:
        print(f"note: only {len(many)} distinct sentences for the 10x workload")
    base = many[:n]
    long = [" ".join(many[i * 10 : i * 10 + 10]) for i in range(min(n, len(many) // 10))]
    return [
        (f"{len(base)} sentences", base),
        (f"{len(long)} texts of 10 sentences", long),
        (f"{len(many)} sentences", many),
    ]


def timed(encode: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors = encode(texts)
    return np.asarray(vectors, dtype=np.float32), time.perf_counter() - started


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    jobs = workloads(sentence_pool(), args.sentences)  # before importing the models: SKIP early without data
    from sentence_transformers import SentenceTransformer

    from services.backbone import resolve_backbone
    from services.embeddings import Embedder

    path = resolve_backbone(args.model)
    embedder = Embedder(path, batch_size=args.batch_size, max_length=args.max_length, cache_dir=None, device="cpu")
    peer = SentenceTransformer(path, device="cpu", local_files_only=True)
    peer.max_seq_length = args.max_length
    sides = {
        "Embedder": lambda texts: embedder.encode(texts, batch_size=args.batch_size),
        "sentence-transformers": lambda texts: peer.encode(
            list(texts), batch_size=args.batch_size, convert_to_numpy=True, normalize_embeddings=True
        ),
    }
    for encode in sides.values():  # warm-up
        encode(jobs[0][1][:16])

    rows = []
    worst = 0.0
    for position, (name, texts) in enumerate(jobs):
        results = {}
        for side in list(sides) if position % 2 == 0 else list(reversed(sides)):  # alternate who goes first
            print(f"{side}: {name}")
            results[side] = timed(sides[side], texts)
        ours, peers = results["Embedder"], results["sentence-transformers"]
        difference = float(np.abs(ours[0] - peers[0]).max())
        worst = max(worst, difference)
        rows.append(
            [
                name,
                f"{len(texts) / ours[1]:.1f}",
                f"{len(texts) / peers[1]:.1f}",
                ratio(len(texts) / ours[1], len(texts) / peers[1]),
                f"{difference:.2e}",
            ]
        )
    body = [
        f"Model: `{args.model}` ({path}), max length {args.max_length} tokens, batch size {args.batch_size} on both "
        "sides, CPU, no cache. Texts: distinct training sentences of BANKING77 and Financial PhraseBank; each "
        "workload runs on both sides back to back (the order alternates).",
        "",
        table(
            [
                "workload",
                "Embedder sentences/s",
                "sentence-transformers sentences/s",
                "Embedder / peer",
                "max abs diff",
            ],
            rows,
        ),
        "",
        f"Largest difference over all vectors: {worst:.2e} ({'within' if worst <= 1e-5 else 'ABOVE'} the 1e-5 target).",
    ]
    write_results("Embeddings", command_line("bench.embeddings"), "\n".join(body))


if __name__ == "__main__":
    main()
