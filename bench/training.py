"""Fine-tuning: the suite's TrainingEngine against a plain ``transformers.Trainer``, same model, data and epochs.

Both fine-tune the default backbone on the training split (less a stratified 10%
validation split that both evaluate on after every epoch) and are scored on the test
split by the same ``TextClassifier``, so only the training differs. The Trainer runs
twice: with its true defaults (learning rate 5e-5, batch 8) and with batch 32 (the
engine's batch size, and the Trainer's faster setting on a CPU).

The effect of length-grouped batching and dynamic padding is measured with the engine's
own switches (``group_by_length=False``: plain shuffled batches; ``padding="max_length"``:
every batch padded to ``max_length``), timing a fixed number of steps of each variant.

    python -m bench.training                          # Financial PhraseBank, 3 epochs
    python -m bench.training --dataset banking77
    python -m bench.training --limit 200 --test-limit 100 --epochs 1 --ablation-steps 8   # smoke run
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    LABEL_COLUMNS,
    add_thread_option,
    command_line,
    load_labeled,
    ratio,
    set_threads,
    stratified_sample,
    table,
    write_results,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(LABEL_COLUMNS), default="financial_phrasebank")
    parser.add_argument("--backbone", default="default", help="backbone for both sides (default all-MiniLM-L6-v2)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--limit", type=int, default=None, help="use at most N training examples (smoke runs)")
    parser.add_argument("--test-limit", type=int, default=None, help="score at most N test examples")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--peer-batch", type=int, default=32, help="batch size of the second Trainer run (0: skip)")
    parser.add_argument("--ablation-steps", type=int, default=60, help="steps timed per batching variant (0: skip)")
    add_thread_option(parser)
    return parser.parse_args()


# -- the suite's side ---------------------------------------------------------------------------------
class StepClock:
    """Engine callback: seconds since the start of the run at the end of every step."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.at: dict[int, float] = {}

    def __call__(self, info: Any) -> None:
        self.at[info.step] = time.perf_counter() - self.started


def engine_run(backbone: str, train, validation, params: dict[str, Any], output_dir: Path, threads: int | None):
    from services.training import TrainingEngine
    from suite.config import TrainingConfig

    engine = TrainingEngine(TrainingConfig(device="cpu", num_threads=threads))
    started = time.perf_counter()
    clock = StepClock(started)
    result = engine.train_classifier(
        backbone, train, validation, params, output_dir=output_dir, progress=False, callback=clock
    )
    history = [
        {
            "epoch": entry["epoch"],
            "step": entry["step"],
            "seconds": clock.at[entry["step"]],
            "accuracy": entry["accuracy"],
        }
        for entry in result.history
        if "accuracy" in entry and entry["step"] in clock.at
    ]
    return result, history, clock


def steady_rate(clock: StepClock, batch_size: int) -> float:
    """Training examples per second between the first and the last step (loading and scoring excluded)."""
    steps = sorted(clock.at)
    if len(steps) < 3:
        return float("nan")
    # The last step's time includes the final evaluation: stop one before it.
    first, last = steps[0], steps[-2]
    return (last - first) * batch_size / (clock.at[last] - clock.at[first])


# -- scoring --------------------------------------------------------------------------------------------
def test_scores(model_dir: Path, test, max_length: int) -> dict[str, float]:
    from services.training import TextClassifier, classification_metrics

    classifier = TextClassifier.from_pretrained(model_dir, device="cpu", max_length=max_length)
    predicted = [p.label for p in classifier.predict([row.text for row in test])]
    labels = classifier.labels
    index = {label: i for i, label in enumerate(labels)}
    metrics = classification_metrics([index.get(row.label, -1) for row in test], [index[p] for p in predicted], labels)
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def first_reaching(history: list[dict[str, float]], accuracy: float) -> float | None:
    return next((entry["seconds"] for entry in history if entry["accuracy"] >= accuracy - 1e-9), None)


def curve(history: list[dict[str, float]]) -> str:
    return ", ".join(f"{e['epoch']:.1f}: {e['accuracy']:.3f} @ {e['seconds']:.0f} s" for e in history) or "-"


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    from bench.peers import hf_finetune
    from services.backbone import resolve_backbone
    from services.training import split_train_validation

    backbone = resolve_backbone(args.backbone)
    rows = stratified_sample(load_labeled(args.dataset, "train"), args.limit)
    test = stratified_sample(load_labeled(args.dataset, "test"), args.test_limit)
    train, validation = split_train_validation(rows, fraction=0.1, seed=42)
    labels = sorted({row.label for row in train})
    test = [row for row in test if row.label in set(labels)]
    # min_steps 0: the same number of epochs on both sides, whatever the data size.
    params = {"epochs": args.epochs, "max_length": args.max_length, "min_steps": 0}

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        folder = Path(scratch)
        print(f"engine: {len(train)} training, {len(validation)} validation examples, {args.epochs} epochs")
        result, history, _ = engine_run(backbone, train, validation, params, folder / "engine", args.threads)
        steps_per_epoch = math.ceil(len(train) / result.params["batch_size"])
        runs.append(
            {
                "name": "suite TrainingEngine (defaults)",
                "lr": result.params["learning_rate"],
                "batch": result.params["batch_size"],
                "steps": result.steps,
                "epochs_done": result.steps / steps_per_epoch,
                "wall": result.wall_seconds,
                "history": history,
                "test": test_scores(folder / "engine", test, args.max_length),
            }
        )
        peer_batches = [None] + ([args.peer_batch] if args.peer_batch else [])
        for batch in peer_batches:
            label = "transformers.Trainer (defaults)" if batch is None else f"transformers.Trainer, batch {batch}"
            print(f"{label}: training")
            peer = hf_finetune(
                backbone,
                train,
                validation,
                labels,
                folder / f"peer-{batch}",
                epochs=args.epochs,
                batch_size=batch,
                max_length=args.max_length,
            )
            runs.append(
                {
                    "name": label,
                    "lr": peer.learning_rate,
                    "batch": peer.batch_size,
                    "steps": peer.steps,
                    "epochs_done": peer.steps / math.ceil(len(train) / peer.batch_size),
                    "wall": peer.wall_seconds,
                    "history": peer.history,
                    "test": test_scores(folder / f"peer-{batch}", test, args.max_length),
                }
            )

        ablations = []
        if args.ablation_steps:
            variants = [
                ("length-grouped batches, dynamic padding (engine)", {}),
                ("random batches, dynamic padding", {"group_by_length": False}),
                (
                    f"random batches, padded to {args.max_length} tokens",
                    {"group_by_length": False, "padding": "max_length"},
                ),
            ]
            tiny_validation = validation[:16]  # evaluated once, after the timed steps
            for name, switches in variants:
                print(f"batching variant: {name}")
                _, _, clock = engine_run(
                    backbone,
                    train,
                    tiny_validation,
                    {**params, **switches, "max_steps": args.ablation_steps, "eval_every": 10**6},
                    folder / "ablation",
                    args.threads,
                )
                ablations.append((name, steady_rate(clock, result.params["batch_size"])))

    print_report(args, train, validation, test, runs, ablations)


def print_report(args, train, validation, test, runs, ablations) -> None:
    engine = runs[0]
    rows = []
    for run in runs:
        examples_per_second = run["epochs_done"] * len(train) / run["wall"]
        final = run["history"][-1]["accuracy"] if run["history"] else float("nan")
        rows.append(
            [
                run["name"],
                f"{run['lr']:g}",
                run["batch"],
                f"{run['epochs_done']:.2f}",
                f"{run['wall']:.0f}",
                f"{examples_per_second:.1f}",
                f"{final:.3f}",
                f"{run['test']['accuracy']:.3f}",
                f"{run['test']['macro_f1']:.3f}",
            ]
        )
    body = [
        f"Data: {args.dataset}, {len(train)} training and {len(validation)} validation examples (a stratified "
        f"10% of the training split), {len(test)} test examples; {args.epochs:g} epochs on each side; "
        f"max length {args.max_length} tokens; CPU. Wall time runs from loading the model to the end of training, "
        "evaluations included; examples/s = examples x epochs trained / wall time. The test scores come from "
        "the same `TextClassifier` for every model.",
        "",
        table(
            [
                "run",
                "learning rate",
                "batch",
                "epochs",
                "wall s",
                "examples/s",
                "final val. accuracy",
                "test accuracy",
                "test macro F1",
            ],
            rows,
        ),
        "",
        "Validation accuracy after each epoch (epoch: accuracy @ seconds since start):",
        "",
    ]
    body += [f"- {run['name']}: {curve(run['history'])}" for run in runs]
    body += ["", "Ratios (suite / peer):", ""]
    engine_rate = engine["epochs_done"] * len(train) / engine["wall"]
    for peer in runs[1:]:
        peer_rate = peer["epochs_done"] * len(train) / peer["wall"]
        target = peer["history"][-1]["accuracy"] if peer["history"] else float("nan")
        reached = first_reaching(engine["history"], target)
        when = (
            f"the engine reached it after {reached:.0f} s ({ratio(reached, peer['wall'])} of the peer's time)"
            if reached is not None
            else "the engine never reached it"
        )
        body.append(
            f"- vs {peer['name']}: examples/s {ratio(engine_rate, peer_rate)}, wall time "
            f"{ratio(engine['wall'], peer['wall'])}, "
            f"test accuracy {engine['test']['accuracy'] - peer['test']['accuracy']:+.3f}, "
            f"test macro F1 {engine['test']['macro_f1'] - peer['test']['macro_f1']:+.3f}; peer's final validation "
            f"accuracy {target:.3f}: {when}."
        )
    if ablations:
        base = ablations[0][1]
        body += [
            "",
            f"Batching (the engine's loop, {args.ablation_steps} steps of batch {engine['batch']} each, steady-state "
            "rate without model loading or evaluation; each variant is the engine with its `group_by_length` "
            "and `padding` switches set as named):",
            "",
            table(
                ["variant", "examples/s", "engine / variant"],
                [[name, f"{rate:.1f}", ratio(base, rate)] for name, rate in ablations],
            ),
        ]
    write_results(f"Training {args.dataset}", command_line("bench.training"), "\n".join(body))


if __name__ == "__main__":
    main()
