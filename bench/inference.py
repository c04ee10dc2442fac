"""Inference: the suite's TextClassifier against ``transformers.pipeline("text-classification")``.

Both load the same fine-tuned folder and classify the same texts (the Financial
PhraseBank test split by default) on the CPU; each batch size runs on both sides back to
back. Reported: documents per second for whole-list calls at each batch size, the
latency of one-document calls, how many predictions differ from the pipeline's, and
the same for the TextClassifier on ONNX Runtime (``runtime="onnx"``, exported in memory) and
for the ONNX graph saved with the model (``OnnxClassifier``: what ``inference_runtime = "auto"``
serves on a CPU in float32), for the TextClassifier in bfloat16 with float32 re-scoring of near ties
(``precision="bfloat16"``, on a CPU with native bfloat16 arithmetic, where the suite's
``inference_precision = "auto"`` picks it; then the pipeline with bfloat16 weights too) and
for the int8 dynamically quantised TextClassifier with its accuracy change.

Without ``--model`` the script first fine-tunes one with the suite's engine on the
training split (``--train-steps`` steps).

    python -m bench.inference
    python -m bench.inference --model ~/.local/share/suite/models/sentiment/sentiment/v1
    python -m bench.inference --train-steps 10 --limit 64 --latency-docs 20 --batch-sizes 1,8   # smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import (
    LABEL_COLUMNS,
    add_thread_option,
    command_line,
    latency_summary,
    load_labeled,
    percentile,
    ratio,
    sample,
    set_threads,
    table,
    write_results,
)

Classify = Callable[[Sequence[str], int], list[str]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a fine-tuned classifier folder (else one is trained)")
    parser.add_argument("--dataset", choices=sorted(LABEL_COLUMNS), default="financial_phrasebank")
    parser.add_argument("--train-steps", type=int, default=200, help="steps of the model trained without --model")
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--limit", type=int, default=None, help="classify at most N test texts")
    parser.add_argument("--latency-docs", type=int, default=200, help="one-document calls timed on each side")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--no-quantized", action="store_true", help="skip the int8 TextClassifier")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime TextClassifier")
    parser.add_argument("--no-bfloat16", action="store_true", help="skip the bfloat16 TextClassifier")
    parser.add_argument("--no-scaling", action="store_true", help="skip the 10x documents / 10x longer runs")
    add_thread_option(parser)
    return parser.parse_args()


def train_quick_model(dataset: str, steps: int, output_dir: Path, max_length: int, threads: int | None) -> float:
    from services.backbone import resolve_backbone
    from services.training import TrainingEngine, split_train_validation
    from suite.config import TrainingConfig

    train, validation = split_train_validation(load_labeled(dataset, "train"), fraction=0.1, seed=42)
    engine = TrainingEngine(TrainingConfig(device="cpu", num_threads=threads))
    result = engine.train_classifier(
        resolve_backbone("default"),
        train,
        validation,
        {"max_steps": steps, "max_length": max_length},
        output_dir=output_dir,
        progress=False,
    )
    return result.wall_seconds


def timed(classify: Classify, texts: Sequence[str], batch_size: int) -> tuple[list[str], float]:
    started = time.perf_counter()
    labels = classify(texts, batch_size)
    return labels, time.perf_counter() - started


def one_at_a_time(classify: Classify, texts: Sequence[str]) -> list[float]:
    seconds = []
    for text in texts:
        started = time.perf_counter()
        classify([text], 1)
        seconds.append(time.perf_counter() - started)
    return seconds


def accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


def main() -> None:
    args = parse_args()
    set_threads(args.threads)
    from bench.peers import hf_pipeline
    from services.training import TextClassifier
    from services.training.inference import native_bfloat16
    from services.training.serving import SERVING_GRAPH, OnnxClassifier

    test = sample(load_labeled(args.dataset, "test"), args.limit)
    texts, truth = [row.text for row in test], [row.label for row in test]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-inference-") as scratch:
        model_dir, trained_note = args.model, f"the model at `{args.model}`"
        if model_dir is None:
            model_dir = Path(scratch) / "model"
            print(f"fine-tuning a model for {args.train_steps} steps on {args.dataset}")
            seconds = train_quick_model(args.dataset, args.train_steps, model_dir, args.max_length, args.threads)
            trained_note = (
                f"a model fine-tuned by the suite's engine on the {args.dataset} training split "
                f"({args.train_steps} steps, {seconds:.0f} s)"
            )
        ours = TextClassifier.from_pretrained(model_dir, device="cpu", max_length=args.max_length)
        pipeline = hf_pipeline(model_dir, max_length=args.max_length)
        sides: dict[str, Classify] = {
            "TextClassifier": lambda t, b: [p.label for p in ours.predict(t, batch_size=b)],
            "pipeline": pipeline,
        }
        if not args.no_onnx and importlib.util.find_spec("onnxruntime") is not None:
            onnx = TextClassifier.from_pretrained(model_dir, device="cpu", max_length=args.max_length, runtime="onnx")
            sides["TextClassifier onnx"] = lambda t, b: [p.label for p in onnx.predict(t, batch_size=b)]
            if (Path(model_dir) / SERVING_GRAPH).is_file():  # what `inference_runtime = "auto"` serves on a CPU
                graph = OnnxClassifier.from_folder(model_dir, max_length=args.max_length)
                sides["saved ONNX graph"] = lambda t, b: [p.label for p in graph.predict(t, batch_size=b)]
        if not args.no_bfloat16 and native_bfloat16():
            half = TextClassifier.from_pretrained(
                model_dir, device="cpu", max_length=args.max_length, precision="bfloat16"
            )
            sides["TextClassifier bf16"] = lambda t, b: [p.label for p in half.predict(t, batch_size=b)]
            sides["pipeline bf16"] = hf_pipeline(model_dir, max_length=args.max_length, dtype="bfloat16")
        if not args.no_quantized:
            quantized = TextClassifier.from_pretrained(
                model_dir, device="cpu", max_length=args.max_length, quantize=True
            )
            sides["TextClassifier int8"] = lambda t, b: [p.label for p in quantized.predict(t, batch_size=b)]
        for classify in sides.values():  # warm-up: first calls allocate and pick kernels
            classify(texts[:8], 8)

        rates: dict[str, dict[int, float]] = {name: {} for name in sides}
        predictions: dict[str, dict[int, list[str]]] = {name: {} for name in sides}
        for position, batch_size in enumerate(batch_sizes):
            order = list(sides) if position % 2 == 0 else list(reversed(sides))  # alternate who goes first
            for name in order:
                print(f"{name}: batch {batch_size}")
                labels, seconds = timed(sides[name], texts, batch_size)
                rates[name][batch_size] = len(texts) / seconds
                predictions[name][batch_size] = labels
        latency_texts = texts[: args.latency_docs]
        latencies = {name: one_at_a_time(sides[name], latency_texts) for name in sides}
        growth = None if args.no_scaling else scaling(model_dir, texts, batch_sizes[-1], "TextClassifier bf16" in sides)

    body = report(args, trained_note, texts, truth, batch_sizes, rates, predictions, latencies)
    if growth:
        body += ["", *report_scaling(growth, batch_sizes[-1])]
    write_results(f"Inference {args.dataset}", command_line("bench.inference"), "\n".join(body))


SCALE = 10
LONG_MAX_LENGTH = 512


def scaling(model_dir: Path, texts: list[str], batch_size: int, with_bfloat16: bool) -> dict[str, dict[str, tuple]]:
    """docs/s and labels of each side on the texts, 10x as many, and texts 10x as long (512 tokens)."""
    from bench.peers import hf_pipeline
    from services.training import TextClassifier

    more = [texts[i % len(texts)] for i in range(len(texts) * SCALE)]
    longer = [" ".join(texts[(i + j) % len(texts)] for j in range(SCALE)) for i in range(len(texts))]
    precisions = ["float32", *(["bfloat16"] if with_bfloat16 else [])]
    sides: dict[str, tuple[Classify, Classify]] = {}
    for precision in precisions:
        short, long = (
            TextClassifier.from_pretrained(model_dir, device="cpu", max_length=length, precision=precision)
            for length in (128, LONG_MAX_LENGTH)
        )
        name = "TextClassifier" if precision == "float32" else "TextClassifier bf16"
        sides[name] = tuple((lambda t, b, c=c: [p.label for p in c.predict(t, batch_size=b)]) for c in (short, long))
    sides["pipeline"] = (hf_pipeline(model_dir, 128), hf_pipeline(model_dir, LONG_MAX_LENGTH))
    results: dict[str, dict[str, tuple]] = {name: {} for name in sides}
    for workload, data, which in (("texts", texts, 0), ("10x documents", more, 0), ("10x longer texts", longer, 1)):
        for name, classify in sides.items():
            classify[which](data[:8], batch_size)
            print(f"scaling: {name}, {workload}")
            labels, seconds = timed(classify[which], data, batch_size)
            results[name][workload] = (len(data) / seconds, seconds, labels)
    return results


def report_scaling(growth: dict[str, dict[str, tuple]], batch_size: int) -> list[str]:
    reference = growth["pipeline"]
    rows = []
    for name, workloads in growth.items():
        base_seconds = workloads["texts"][1]
        for workload, (rate, seconds, labels) in workloads.items():
            differ = sum(a != b for a, b in zip(labels, reference[workload][2], strict=True))
            rows.append(
                [
                    name,
                    workload,
                    f"{len(labels):,}",
                    f"{rate:.1f}",
                    f"{seconds / base_seconds:.1f}x",
                    ratio(rate, reference[workload][0]),
                    "-" if name == "pipeline" else differ,
                ]
            )
    return [
        f"How the cost grows, batch {batch_size}: the same test texts, {SCALE}x as many (repeated), and {SCALE}x "
        f"as long (each text joined with the {SCALE - 1} after it, truncated at {LONG_MAX_LENGTH} tokens on every "
        "side).",
        "",
        table(["side", "workload", "texts", "docs/s", "time vs texts", "docs/s / pipeline", "labels differ"], rows),
    ]


def report(args, trained_note, texts, truth, batch_sizes, rates, predictions, latencies) -> list[str]:
    names = list(rates)
    ours = [name for name in names if name != "pipeline"]
    rows = [
        [
            f"docs/s, batch {b}",
            *[f"{rates[name][b]:.1f}" for name in names],
            *[ratio(rates[name][b], rates["pipeline"][b]) for name in ours],
        ]
        for b in batch_sizes
    ]
    for label, measure in (("median", statistics.median), ("p95", lambda values: percentile(values, 95))):
        rows.append(
            [
                f"one-document call, {label} ms",
                *[f"{measure(latencies[name]) * 1000:.1f}" for name in names],
                *[ratio(measure(latencies["pipeline"]), measure(latencies[name])) for name in ours],
            ]
        )
    reference = predictions["pipeline"]
    mismatch_rows = []
    for name in names:
        if name == "pipeline":
            continue
        counts = [sum(a != b for a, b in zip(predictions[name][s], reference[s], strict=True)) for s in batch_sizes]
        mismatch_rows.append([name, *counts])
    largest = batch_sizes[-1]
    accuracy_rows = [[name, f"{accuracy(predictions[name][largest], truth):.4f}"] for name in names]
    body = [
        f"Model: {trained_note}. Texts: {len(texts)} from the {args.dataset} test split, truncated at "
        f"{args.max_length} tokens on both sides; CPU. Each batch size runs on every side back to back "
        "(the order alternates); docs/s is for one call over the whole list with that batch size.",
        "",
        table(["measure", *names, *[f"{name} / pipeline" for name in ours]], rows),
        "",
        f"Latency: {len(latencies[names[0]])} one-document calls per side. "
        + "; ".join(f"{name}: {latency_summary(latencies[name])}" for name in names)
        + ". (In the latency rows the ratio columns are speed-ups: pipeline time / our time.)",
        "",
        f"Predictions that differ from the pipeline's ({len(texts)} texts):",
        "",
        table(["classifier", *[f"batch {b}" for b in batch_sizes]], mismatch_rows),
        "",
        f"Accuracy on these {len(texts)} test texts (batch {largest}):",
        "",
        table(["classifier", "accuracy"], accuracy_rows),
    ]
    if "TextClassifier int8" in names:
        change = accuracy(predictions["TextClassifier int8"][largest], truth) - accuracy(
            predictions["TextClassifier"][largest], truth
        )
        body += ["", f"int8 dynamic quantisation changes accuracy by {change:+.4f}."]
    return body


if __name__ == "__main__":
    main()
