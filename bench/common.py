"""Shared helpers for the benchmark scripts: data location, machine description, timing, results.

Each script prints a Markdown section and writes it to ``bench/results/<name>.md``; the
figures quoted in BENCHMARKS.md come from those files, with the command that made them.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SUITE_BENCH_DATA", ROOT.parent / "shared" / "data"))
RESULTS_DIR = Path(os.environ.get("SUITE_BENCH_RESULTS", ROOT / "bench" / "results"))


def data_path(name: str) -> Path:
    """The folder of a public data set, or exit 0 with a clear message when it is absent."""
    path = DATA_DIR / name
    if not path.is_dir():
        print(f"SKIP: data set '{name}' not found at {path} (set SUITE_BENCH_DATA to the folder holding it)")
        sys.exit(0)
    return path


def machine() -> str:
    import torch

    device = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU only"
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} cores ({cpu}), {device}, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - start
    elapsed.append(time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return f"median {statistics.median(ms):.1f} ms, p95 {percentile(ms, 95):.1f} ms, p99 {percentile(ms, 99):.1f} ms"


def write_results(name: str, command: str, body: str) -> Path:
    """Write one benchmark's Markdown section (with its command and machine) and echo it."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = f"### {name}\n\nCommand: `{command}`\n\nMachine: {machine()}\n\n{body.strip()}\n"
    path = RESULTS_DIR / f"{name.lower().replace(' ', '_').replace('/', '_')}.md"
    path.write_text(text, encoding="utf-8")
    print(text)
    return path


def table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# -- shared by several scripts -------------------------------------------------------------------

# The labelled benchmark sets: folder -> name of the label column in train.csv/test.csv.
LABEL_COLUMNS = {"financial_phrasebank": "label", "banking77": "category"}


def command_line(module: str) -> str:
    """The command that reproduces this run, as written in the results."""
    import shlex

    return shlex.join(["python", "-m", module, *sys.argv[1:]])


def add_thread_option(parser) -> None:
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for both sides (default: torch's own choice)"
    )


def set_threads(threads: int | None) -> None:
    """Same thread count for the suite and its peer: set once, before either runs."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if threads:
        import torch

        torch.set_num_threads(threads)


def load_labeled(dataset: str, split: str):
    """``train`` or ``test`` of a labelled set as ``LabeledText`` rows (SKIP when the data is absent)."""
    from services.training import load_labeled_file

    if dataset not in LABEL_COLUMNS:
        raise SystemExit(f"unknown data set '{dataset}' (choose {', '.join(LABEL_COLUMNS)})")
    return load_labeled_file(data_path(dataset) / f"{split}.csv", label_field=LABEL_COLUMNS[dataset])


def sample(rows: list, limit: int | None, seed: int = 42) -> list:
    """At most ``limit`` rows, drawn at random with ``seed`` but kept in their original order."""
    import random

    if not limit or limit >= len(rows):
        return list(rows)
    chosen = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in chosen]


def stratified_sample(rows: list, limit: int | None, seed: int = 42) -> list:
    """Like :func:`sample`, but every label keeps at least one row (small smoke runs still have all classes)."""
    import random
    from collections import defaultdict

    if not limit or limit >= len(rows):
        return list(rows)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_label[row.label].append(index)
    rng = random.Random(seed)
    chosen = {rng.choice(indices) for indices in by_label.values()}
    rest = [i for i in range(len(rows)) if i not in chosen]
    chosen.update(rng.sample(rest, max(0, limit - len(chosen))))
    return [rows[i] for i in sorted(chosen)]


def rss_mb() -> float:
    """Resident memory of this process in MiB (psutil when installed, else /proc/self/status)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def ratio(ours: float, peer: float) -> str:
    """``ours / peer`` as text, e.g. ``2.41x``."""
    return f"{ours / peer:.2f}x" if peer else "n/a"


def suite_context(data_dir: Path, plugin: str, options: dict | None = None, threads: int | None = None, **settings):
    """A started SuiteContext in ``data_dir`` with only ``plugin`` enabled (the others switched off)."""
    from importlib.metadata import entry_points

    from suite.context import SuiteContext

    others = {ep.name for ep in entry_points(group="suite.plugins")} - {plugin}
    plugins = {name: {"enabled": False} for name in others}
    plugins[plugin] = options or {}
    training = {"device": "cpu", **({"num_threads": threads} if threads else {}), **settings.pop("training", {})}
    ctx = SuiteContext.create(None, data_dir=data_dir, plugins=plugins, training=training, **settings)
    ctx.startup()
    return ctx
