"""How fine-tuning time grows with the work: the shared engine against ``transformers.Trainer``.

Three workloads from the Financial PhraseBank training split, one epoch each, batch 32 on
both sides (the engine's defaults otherwise; the Trainer's defaults otherwise), back to back:
``--examples`` sentences (max length 128), ten times as many, and the same number of texts
ten times as long (each sentence joined with the nine after it, max length 512; the label
is the first sentence's, which is fine for timing and not meant for accuracy). Both sides
evaluate on the same 32 held-out sentences at the end of the epoch; wall time runs from
loading the model to the end of training.

    python -m bench.training_scaling
    python -m bench.training_scaling --examples 32   # smoke run
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from bench.common import (
    add_thread_option,
    command_line,
    load_labeled,
    ratio,
    set_threads,
    table,
    write_results,
)
from bench.peers import hf_finetune
from bench.training import engine_run

SCALE = 10
BATCH_SIZE = 32
VALIDATION_ROWS = 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=320, help="sentences of the base workload")
    add_thread_option(parser)
    return parser.parse_args()


def workloads(rows: list, examples: int) -> dict[str, tuple[list, int]]:
    """name -> (training rows, max length)."""
    from services.training import LabeledText

    base = rows[:examples]
    longer = [
        LabeledText(" ".join(rows[(i + j) % len(rows)].text for j in range(SCALE)), row.label)
        for i, row in enumerate(base)
    ]
    return {
        "texts": (base, 128),
        f"{SCALE}x documents": ([rows[i % len(rows)] for i in range(examples * SCALE)], 128),
        f"{SCALE}x longer texts": (longer, 512),
    }


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    from services.backbone import resolve_backbone

    backbone = resolve_backbone("default")
    rows = load_labeled("financial_phrasebank", "train")
    random.Random(3).shuffle(rows)
    validation, pool = rows[:VALIDATION_ROWS], rows[VALIDATION_ROWS:]
    labels = sorted({row.label for row in rows})
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-training-scaling-") as scratch:
        for name, (train, max_length) in workloads(pool, args.examples).items():
            params = {"epochs": 1, "batch_size": BATCH_SIZE, "max_length": max_length, "min_steps": 0}
            print(f"{name}: engine")
            ours, _, _ = engine_run(backbone, train, validation, params, Path(scratch) / f"ours-{name}", args.threads)
            print(f"{name}: Trainer")
            theirs = hf_finetune(
                backbone,
                train,
                validation,
                labels,
                Path(scratch) / f"peer-{name}",
                epochs=1,
                batch_size=BATCH_SIZE,
                max_length=max_length,
            )
            results.append((name, len(train), max_length, ours.wall_seconds, theirs.wall_seconds))
    report(results)


def report(results: list[tuple[str, int, int, float, float]]) -> None:
    base_ours, base_peer = results[0][3], results[0][4]
    rows = [
        [
            name,
            f"{count:,}",
            max_length,
            f"{ours:.1f}",
            f"{peer:.1f}",
            f"{ours / base_ours:.1f}x",
            f"{peer / base_peer:.1f}x",
            ratio(peer, ours),
        ]
        for name, count, max_length, ours, peer in results
    ]
    body = [
        f"One epoch of each workload, batch {BATCH_SIZE} on both sides, from the financial_phrasebank training "
        f"split; both sides evaluate on the same {VALIDATION_ROWS} held-out sentences. The speed-up column is "
        "Trainer time / engine time.",
        "",
        table(
            [
                "workload",
                "examples",
                "max length",
                "engine s",
                "Trainer s",
                "engine time vs texts",
                "Trainer time vs texts",
                "engine speed-up",
            ],
            rows,
        ),
    ]
    write_results("Training scaling", command_line("bench.training_scaling"), "\n".join(body))


if __name__ == "__main__":
    main()
