"""Recommender settings on the validation split: adapter variants compared without touching test users.

Reads the catalogue vectors that ``bench.recommender --work-dir DIR`` saved (zero-shot backbone),
carves the same splits, and fits the plugin's adapter (``training.fit_adapter``) on the
interactions in the training part of both test splits minus the validation items, once per
variant. Each variant is scored by the validation recall@20 (unseen validation items, the text
signal alone, ``evaluation.text_recall``) of its best epoch; the test users are never read.

    python -m bench.recommender_dev --work-dir /tmp/recommender-bench
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import add_thread_option, command_line, set_threads, suite_context, table, write_results

VARIANTS = {
    "item -> item pairs, in-batch + hard negatives, learning rate 1e-3": {"adapter_learning_rate": 1e-3},
    "in-batch negatives only, learning rate 1e-3": {"hard_negatives": False, "adapter_learning_rate": 1e-3},
    "item -> item + history -> next item (profiles as served), learning rate 1e-3": {
        "adapter_history_queries": True,
        "adapter_learning_rate": 1e-3,
    },
    **{f"learning rate {rate:g}": {"adapter_learning_rate": rate} for rate in (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", required=True, help="the --work-dir of a bench.recommender run")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--adapter-epochs", type=int, default=None)
    parser.add_argument("--validation-users", type=int, default=300)
    parser.add_argument("--adapter-max-pairs", type=int, default=100_000, help="adapter pairs per epoch")
    add_thread_option(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    import tempfile

    from bench.recommender import both_trains, load_citeulike
    from plugins.recommender.evaluation import cold_item_split, holdout_split
    from plugins.recommender.training import fit_adapter, resolved_training, validation_split

    histories, texts = load_citeulike(None)
    ids = sorted(texts, key=lambda item: int(item[1:]))
    vectors = np.load(Path(args.work_dir) / f"zero-shot-{args.precision}.npy")
    train = both_trains(holdout_split(histories, 0.2, 42), cold_item_split(histories, 0.1, 42))
    overrides = {"validation_users": args.validation_users, "adapter_max_pairs": args.adapter_max_pairs}
    if args.adapter_epochs:
        overrides["adapter_epochs"] = args.adapter_epochs
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-recommender-dev-") as scratch:
        ctx = suite_context(Path(scratch) / "data", "recommender", {"training": overrides}, threads=args.threads)
        try:
            options = ctx.plugin_options("recommender")
            for name, variant in VARIANTS.items():
                training = resolved_training(options, variant)
                split = validation_split(train, training)
                started = time.perf_counter()
                result = fit_adapter(vectors, ids, split.train, texts, split, options, training)
                seconds = time.perf_counter() - started
                curve = " ".join(f"{epoch.recall:.3f}" for epoch in result.epochs)
                rows.append([name, f"{result.baseline:.3f}", f"{result.best:.3f}", curve, f"{seconds:.0f}"])
                print(f"  {name}: {result.baseline:.3f} -> {result.best:.3f} ({curve})", flush=True)
        finally:
            ctx.shutdown()
    body = (
        f"Adapter epochs of up to {args.adapter_max_pairs:,} pairs, early stopping patience "
        f"{training.early_stopping_patience}. Validation: {training.validation_items:.0%} of the items held back "
        f"as unseen from the training interactions of both test splits; recall@20 of {args.validation_users} of "
        "their users, text signal alone. Zero-shot backbone vectors; adapter defaults otherwise. Test users not read."
        "\n\n" + table(["variant", "encoder alone", "best epoch", "recall@20 per epoch", "seconds"], rows)
    )
    write_results("Recommender adapter on the validation split", command_line("bench.recommender_dev"), body)


if __name__ == "__main__":
    main()
