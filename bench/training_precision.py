"""Training precision: the same fine-tunes in float32 and under bfloat16 autocast, side by side.

For each data set and seed the engine fine-tunes the default backbone twice on the same
rows, once per ``[training] precision`` (``float32``, ``bfloat16``), with its defaults
otherwise and early stopping on a dev split carved from train, as the plugins do. Both
runs are scored on that dev split. The test split is never read: this measures an option
for the user's hardware; it is not a quality figure of the suite.

Reported per precision: dev accuracy and macro F1 (mean ± spread over the seeds), training
seconds (loading and saving included) and steady examples/s (``bench.training``'s clock:
between the first and the last step).

    python -m bench.training_precision --threads 2
    python -m bench.training_precision --datasets banking77 --seeds 1 --limit 200   # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import add_thread_option, command_line, load_labeled, ratio, set_threads, table, write_results

PRECISIONS = ("float32", "bfloat16")
DATASETS = {
    "financial_phrasebank": "Financial PhraseBank, all training data",
    "banking77": "BANKING77, 10 examples per intent",
}
PER_INTENT = 10
FIRST_SEED = 42


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=sorted(DATASETS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds per precision")
    parser.add_argument("--limit", type=int, default=None, help="at most N training rows (smoke runs)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on the steps of a run (smoke runs)")
    add_thread_option(parser)
    return parser.parse_args()


def train_and_dev(dataset: str, limit: int | None) -> tuple[list, list]:
    """Training rows and a dev split carved from train (the same for every seed and precision)."""
    from bench.common import stratified_sample
    from bench.distillation import per_label
    from services.training import split_train_validation

    rows = load_labeled(dataset, "train")
    if dataset == "banking77":  # the few-shot setting: 10 per intent to train, 10 others to choose on
        train = per_label(rows, PER_INTENT, seed=42)
        chosen = {row.text for row in train}
        return stratified_sample(train, limit), per_label(rows, PER_INTENT, seed=43, exclude=chosen)
    train, dev = split_train_validation(rows, fraction=0.1, seed=42)
    return stratified_sample(train, limit), dev


def one_run(backbone: str, train: list, dev: list, params: dict[str, Any], folder: Path, threads: int | None):
    from bench.training import engine_run, steady_rate

    result, _, clock = engine_run(backbone, train, dev, params, folder, threads)
    metrics = result.metrics
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "seconds": result.wall_seconds,
        "examples_per_second": steady_rate(clock, result.params["batch_size"]),
        "steps": result.steps,
        "ran_in": metrics["train_precision"],
    }


def dataset_table(runs: dict[str, list[dict[str, Any]]]) -> str:
    from bench.distillation import spread

    base_rate = statistics.mean(run["examples_per_second"] for run in runs["float32"])
    rows = []
    for precision, done in runs.items():
        rate = statistics.mean(run["examples_per_second"] for run in done)
        rows.append(
            [
                precision,
                ", ".join(sorted({run["ran_in"] for run in done})),
                spread(done, "accuracy"),
                spread(done, "macro_f1"),
                f"{statistics.mean(run['seconds'] for run in done):.0f}",
                f"{statistics.mean(run['steps'] for run in done):.0f}",
                f"{rate:.1f}",
                ratio(rate, base_rate),
            ]
        )
    headers = ["precision", "ran in", "dev accuracy", "dev macro F1", "seconds", "steps", "examples/s", "vs float32"]
    return table(headers, rows)


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    data = {name: train_and_dev(name, args.limit) for name in args.datasets}  # SKIP early without data
    from services.backbone import resolve_backbone
    from services.training.inference import native_bfloat16

    backbone = resolve_backbone("default")
    sections = []
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as scratch:
        for name, (train, dev) in data.items():
            runs: dict[str, list[dict[str, Any]]] = {precision: [] for precision in PRECISIONS}
            for seed in range(FIRST_SEED, FIRST_SEED + args.seeds):
                for precision in PRECISIONS:  # alternating, so drifting machine load hits both alike
                    params = {"seed": seed, "precision": precision, "max_steps": args.max_steps}
                    run = one_run(backbone, train, dev, params, Path(scratch) / "model", args.threads)
                    runs[precision].append(run)
                    print(
                        f"  {name} seed {seed} {precision}: dev accuracy {run['accuracy']:.4f}, "
                        f"{run['examples_per_second']:.1f} examples/s",
                        flush=True,
                    )
            sections.append(
                f"{DATASETS[name]}: {len(train):,} training rows, {len(dev):,} dev rows, seeds "
                f"{FIRST_SEED}-{FIRST_SEED + args.seeds - 1}.\n\n{dataset_table(runs)}"
            )
    cpu = "has" if native_bfloat16() else "does not have"
    body = (
        f"This CPU {cpu} native bfloat16 arithmetic (AMX or AVX512-BF16). Engine defaults otherwise (learning rate, "
        "batch 32, up to 4 epochs, early stopping on the dev split); the weights, gradients and optimiser stay "
        "float32 in both runs, and evaluation runs in float32.\n\n" + "\n\n".join(sections)
    )
    write_results("Training precision", command_line("bench.training_precision"), body)


if __name__ == "__main__":
    main()
