"""BENCHMARKS.md is what ``python -m bench.run_all --assemble`` builds from bench/results/, so that a
rerun of one benchmark replaces its section and loses nothing else."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def section_order() -> list[str]:
    source = (ROOT / "bench" / "run_all.py").read_text(encoding="utf-8")
    listing = re.search(r"SECTION_ORDER = \[(.*?)\]", source, re.S)
    assert listing, "bench/run_all.py defines SECTION_ORDER"
    return re.findall(r'"([^"]+\.md)"', listing.group(1))


def test_every_results_file_has_its_place_in_the_order() -> None:
    assert sorted(path.name for path in RESULTS.glob("*.md")) == sorted(section_order())


def test_benchmarks_md_is_the_assembled_results(tmp_path: Path) -> None:
    built = tmp_path / "BENCHMARKS.md"
    env = {key: value for key, value in os.environ.items() if key != "SUITE_BENCH_RESULTS"}
    command = [sys.executable, "-m", "bench.run_all", "--assemble", "--output", str(built)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    expected = built.read_text(encoding="utf-8")
    assert (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8") == expected, (
        "BENCHMARKS.md was edited by hand: put the text in bench/results/*.md and run "
        "`python -m bench.run_all --assemble`"
    )
