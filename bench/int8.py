"""int8 weights with one scale per matrix against one per output channel, on the same classifiers.

Every int8 classifier is the suite's own (``TextClassifier.from_pretrained(..., quantize=True)``
in ONNX Runtime and in torch), once with per-matrix weight scales (the suite's earlier default)
and once per output channel (today's). Each is compared with the same model in float32 torch on
the dev split that ``bench.distillation`` carves from the training split; the test split is
never read. Reported: labels that agree with float32, the largest change of a class probability
per text (mean, 95th percentile, max), the share of texts where one moves by more than 0.1,
accuracy, docs/s at batch 64 and size. "refused" means the suite's load-time check refused the
int8 model (a probability on its probe texts moved by more than 0.1).

The script first fine-tunes MiniLM on the data set's training split; ``--model`` adds other
classifiers, such as the students ``bench.distillation`` trains.

    python -m bench.int8 --dataset banking77
    python -m bench.int8 --dataset banking77 --model STUDENT_FOLDER [--model ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np

from bench.common import add_thread_option, command_line, set_threads, table, write_results

SPEED_BATCH = 64
VARIANTS = {  # name -> (runtime, per_channel)
    "ONNX int8, per-matrix scales": ("onnx", False),
    "ONNX int8, per-channel scales": ("onnx", True),
    "torch int8, per-matrix scales": ("torch", False),
    "torch int8, per-channel scales": ("torch", True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["phrasebank", "banking77"], default="banking77")
    parser.add_argument("--model", type=Path, action="append", help="a classifier folder (repeatable)")
    parser.add_argument("--per-intent", type=int, default=10, help="BANKING77 training examples per intent")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny subsets, a few steps")
    add_thread_option(parser)
    args = parser.parse_args()
    args.select = True  # bench.distillation's split: train and dev only
    return args


@contextmanager
def weight_scales(per_channel: bool):
    """The suite's int8 paths with per-matrix or per-channel weight scales."""
    from services.training import inference, onnx_runtime

    with (
        mock.patch.object(onnx_runtime, "quantized", partial(onnx_runtime.quantized, per_channel=per_channel)),
        mock.patch.object(
            inference, "quantized_linear_layers", partial(inference.quantized_linear_layers, per_channel=per_channel)
        ),
    ):
        yield


def scored(classifier, texts: list[str]) -> tuple[np.ndarray, float]:
    """Probabilities on ``texts`` and docs/s at batch 64 (after tracing and one warm-up batch)."""
    classifier.prepare()  # float32 torch traces its forward pass here, not inside the timed call
    classifier.predict_proba(texts[:SPEED_BATCH], batch_size=SPEED_BATCH)
    started = time.perf_counter()
    probabilities = classifier.predict_proba(texts, batch_size=SPEED_BATCH)
    return probabilities, len(texts) / (time.perf_counter() - started)


def compare(folder: Path, dev: list) -> list[list[object]]:
    from services.errors import ModelError
    from services.training import TextClassifier

    texts = [row.text for row in dev]
    exact = TextClassifier.from_pretrained(folder, device="cpu")
    gold = np.array([exact.labels.index(row.label) for row in dev])
    reference, reference_speed = scored(exact, texts)
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 2**20
    accuracy = float((reference.argmax(1) == gold).mean())
    rows = [["float32 torch", "-", "-", "-", "-", "-", accuracy, "1.00x", f"{size:.1f}"]]
    for name, (runtime, per_channel) in VARIANTS.items():
        try:
            with weight_scales(per_channel):
                int8 = TextClassifier.from_pretrained(folder, device="cpu", runtime=runtime, quantize=True)
        except ModelError:
            rows.append([name, "refused", *["-"] * 7])
            continue
        probabilities, speed = scored(int8, texts)
        moved = np.abs(probabilities - reference).max(axis=1)
        size = getattr(int8._logits, "size_bytes", 0) / 2**20
        size = f"{size:.1f}" if size else "-"
        rows.append(
            [
                name,
                float((probabilities.argmax(1) == reference.argmax(1)).mean()),
                float(moved.mean()),
                float(np.quantile(moved, 0.95)),
                float(moved.max()),
                float((moved > 0.1).mean()),
                float((probabilities.argmax(1) == gold).mean()),
                f"{speed / reference_speed:.2f}x",
                size,
            ]
        )
    return rows


def fine_tuned(split, work: Path) -> Path:
    from services.backbone import resolve_backbone
    from services.training import TrainingEngine
    from suite.config import TrainingConfig

    engine = TrainingEngine(TrainingConfig())
    params = {**split.params, "seed": 42}
    result = engine.train_classifier(resolve_backbone("default"), split.train, split.dev, params, output_dir=work)
    return result.model_dir


def main() -> None:
    from bench.distillation import load_split

    args = parse_args()
    set_threads(args.threads)
    split = load_split(args.dataset, args)
    headers = [
        "model",
        "labels as float32",
        "max prob. change, mean",
        "p95",
        "max",
        "texts with a change > 0.1",
        "dev accuracy",
        "docs/s vs float32",
        "MB",
    ]
    sections = []
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as work:
        titled = [("MiniLM fine-tuned by this script (seed 42)", fine_tuned(split, Path(work) / "minilm"))]
        titled += [(folder.name, folder) for folder in args.model or ()]
        for title, folder in titled:
            sections.append(f"#### {title}\n\n{table(headers, compare(folder, split.dev))}")
    body = (
        f"{args.dataset}: {len(split.dev)} dev texts carved from the training split (the test split is not "
        f"read). docs/s at batch {SPEED_BATCH}, against the same model in float32 torch in the same run.\n\n"
        + "\n\n".join(sections)
    )
    name = f"int8 weight scales {args.dataset}" + (" quick" if args.quick else "")
    write_results(name, command_line("bench.int8"), body)


if __name__ == "__main__":
    main()
