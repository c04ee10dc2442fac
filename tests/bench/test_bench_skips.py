"""Every benchmark that reads ../shared/data skips with one clear line, exit 0, where the data is absent.

The benchmarks themselves never run in the test suite (they take minutes to hours); this keeps
them importable and keeps their promise to skip rather than fail on a machine without the data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA_SET_OF = {
    "chatbot": "banking77",
    "search": "banking77",
    "embeddings": "banking77",
    "sentiment": "financial_phrasebank",
    "sentiment_dev": "financial_phrasebank",
    "training": "financial_phrasebank",
    "training_scaling": "financial_phrasebank",
    "training_precision": "banking77",
    "inference": "financial_phrasebank",
    "distillation": "financial_phrasebank",
    "int8": "banking77",
    "recommender": "citeulike_a",
}


def reads_a_data_set(path: Path) -> bool:
    source = path.read_text(encoding="utf-8")
    return path.stem != "common" and any(call in source for call in ("load_labeled(", "data_path(", "load_split("))


def test_every_data_benchmark_is_listed() -> None:
    readers = {path.stem for path in (ROOT / "bench").glob("*.py") if reads_a_data_set(path)}
    assert readers == set(DATA_SET_OF), f"update DATA_SET_OF: {sorted(readers ^ set(DATA_SET_OF))}"


@pytest.mark.parametrize("module", sorted(DATA_SET_OF))
def test_benchmark_skips_without_its_data(module: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    env = {**os.environ, "SUITE_BENCH_DATA": str(tmp_path / "no-data"), "SUITE_BENCH_RESULTS": str(results)}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"SKIP: data set '{DATA_SET_OF[module]}' not found" in done.stdout
    assert "Traceback" not in done.stderr
    assert not results.exists() or not any(results.iterdir())
