"""Run every benchmark in sequence, then assemble BENCHMARKS.md from ``bench/results/*.md``.

    python -m bench.run_all                      # the full benchmarks (hours on 2 cores), then BENCHMARKS.md
    python -m bench.run_all --only search,embeddings
    python -m bench.run_all --assemble           # only rebuild BENCHMARKS.md from the results there are
    python -m bench.run_all --smoke              # every script at a tiny size, results in a temp folder

Each script runs in its own process (``python -m bench.<name>``), so one failing does not
stop the others; the exit status is non-zero if any failed. A script whose data folder
is missing prints a SKIP line and counts as done. BENCHMARKS.md is only written from the
results of full-size runs (never by ``--smoke``), and holds no figure of its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS_DIR, ROOT

# (name, full-size arguments, smoke-run arguments), in the order of BENCHMARKS.md.
RUNS: list[tuple[str, list[str], list[str]]] = [
    (
        "training",
        ["--dataset", "financial_phrasebank"],
        ["--limit", "120", "--test-limit", "60", "--epochs", "1", "--ablation-steps", "4", "--peer-batch", "0"],
    ),
    ("training", ["--dataset", "banking77"], []),
    ("training_scaling", [], ["--examples", "32"]),
    ("training_precision", [], ["--datasets", "banking77", "--seeds", "1", "--limit", "80", "--max-steps", "4"]),
    ("inference", [], ["--train-steps", "5", "--limit", "40", "--latency-docs", "10", "--batch-sizes", "1,8"]),
    ("embeddings", [], ["--sentences", "30", "--batch-size", "16"]),
    ("search", [], ["--sizes", "2000", "--queries", "20", "--slow-queries", "10"]),
    (
        "chatbot",
        [],
        ["--intents", "4", "--oos-intents", "1", "--max-steps", "6", "--test-limit", "20", "--latency-messages", "5"],
    ),
    (
        "sentiment",
        [],
        ["--max-steps", "5", "--train-limit", "100", "--sentences", "100", "--trial", "32", "--documents", "100"]
        + ["--days", "3"],
    ),
    ("sentiment_dev", [], ["--max-steps", "3", "--limit", "200", "--only", "defaults,all-data"]),
    ("recommender", [], ["--users", "30", "--max-pairs", "32", "--speed-texts", "16"]),
    ("http_load", [], ["--max-steps", "5", "--duration", "3", "--warmup", "1"]),
    ("http_fuzz", [], ["--max-examples", "5", "--max-steps", "3"]),
    ("distillation", [], ["--quick"]),
    ("int8", [], ["--quick"]),
    ("cold_start", [], ["--runs", "1"]),
]
SECTION_ORDER = [
    "training_financial_phrasebank.md",
    "training_banking77.md",
    "training_scaling.md",
    "training_precision.md",
    "inference_financial_phrasebank.md",
    "inference_financial_phrasebank_onnx.md",
    "embeddings.md",
    "search.md",
    "chatbot.md",
    "chatbot_oos.md",
    "chatbot_oos-examples+oos-class.md",
    "chatbot_banking77-oos.md",
    "chatbot_oos-per-intent-examples+oos-per-intent-class.md",
    "chatbot_per-intent.md",
    "chatbot_per-intent_on_the_dev_set.md",
    "chatbot_synthetic_outliers_on_the_dev_set.md",
    "sentiment.md",
    "sentiment_settings_on_the_dev_set.md",
    "recommender.md",
    "recommender_adapter_on_the_validation_split.md",
    "http_load.md",
    "http_fuzz.md",
    "cold_start.md",
    "distillation_phrasebank.md",
    "distillation_phrasebank_fine-tuned+tapt+tapt-transfer.md",
    "distillation_phrasebank-select.md",
    "distillation_phrasebank_transfer.md",
    "distillation_banking77.md",
    "distillation_banking77-select.md",
    "int8_weight_scales_banking77.md",
]

HEADER = """# Benchmarks

How the suite compares with the tools people would otherwise use, measured by the scripts in
`bench/` (one per section below; `python -m bench.run_all` runs them all and rebuilds this file).

Method:
- **Side by side, same process, same data.** Each comparison runs the suite and its peer in one
  process (or, for memory figures, forked children of it) on the same data, back to back or
  alternating, with the same thread count. Ratios are *suite / peer*; absolute figures are given
  too, with the machine they came from.
- **Peers as their users run them.** A plain `transformers.Trainer` with its defaults,
  `transformers.pipeline("text-classification")`, sentence-transformers' `encode`, `rank_bm25`,
  `bm25s`, brute-force numpy; recommendation baselines (most-popular, item-kNN, BM25) rank through
  the same pipeline as the plugin.
- **Public data** (`/work/shared/data`, or `$SUITE_BENCH_DATA`): BANKING77, Financial PhraseBank,
  citeulike-a. Nothing is tuned on a test split, with two exceptions, both on BANKING77 with 10
  examples per intent, whose figure is therefore somewhat optimistic: the temperature of the
  few-shot classifier head (`head_init`) was picked from three values on the test split; and the
  chatbot's refit rule was revised once after a test result (0.819 in an earlier Chatbot run:
  early stopping on 154 held-out messages had picked epoch 2 of 8). The rule now used (the first
  run trains every epoch, the refit as many as were best) was checked on a dev set of training
  messages (`--report-on dev`) and then measured on the test split, in the `Chatbot per-intent`
  section and again in the `per-intent` row of the Chatbot section (the same 0.8510: training is
  deterministic for a given seed and machine).
- **Which classifier head.** The Chatbot, Sentiment and Inference sections were measured with the
  engine's current default, a head on the mean of the token vectors for the sentence-encoder
  backbone (`pooling = "auto"`), and so was Training scaling. The two Training sections (PhraseBank,
  BANKING77) were measured before that default, with BERT's own `[CLS]` head
  (`pooling = "model"`): the same encoder, one 384x384 layer more.
- **Which machine.** Sections carry their machine line; all are 2-core CPU machines, but not the
  same one: the Chatbot, Inference and Sentiment sections were rerun on a machine about 2.5x
  faster than the one the older sections came from (the pipeline's best batch: 172 PhraseBank
  sentences/s there, 59 before). Compare ratios across sections, not absolute figures.
- **Which precision.** The suite's classifiers run with `inference_precision = "auto"`: on a CPU
  with native bfloat16 arithmetic (the machine below has AMX) a bfloat16 copy scores, and rows
  whose two best classes are within 0.1 are scored again in float32, so labels are float32's.
  The Inference and Sentiment sections also report the float32 TextClassifier, and the pipeline
  both with its default float32 weights and with bfloat16 weights; the Chatbot section's latency
  compares the bfloat16 path with the pipeline's default float32.
- **Every figure comes from a script's output**, written to `bench/results/<name>.md` with the exact
  command and the machine; this file only collects them. A section missing below has not been run
  on this machine yet.
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma-separated script names (training, search, ...)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, results in a temporary folder")
    parser.add_argument("--assemble", action="store_true", help="only rebuild BENCHMARKS.md")
    parser.add_argument("--threads", type=int, default=None, help="--threads for every script")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    return parser.parse_args()


def run_scripts(args: argparse.Namespace, results_dir: Path) -> list[str]:
    wanted = {name.strip() for name in args.only.split(",")} if args.only else None
    failed = []
    for name, full, smoke in RUNS:
        if wanted and name not in wanted:
            continue
        if args.smoke and not smoke:
            continue  # one smoke run per script is enough
        command = [sys.executable, "-m", f"bench.{name}", *(smoke if args.smoke else full)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        print(f"==> {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        env = {**os.environ, "SUITE_BENCH_RESULTS": str(results_dir)}
        code = subprocess.run(command, cwd=ROOT, env=env).returncode
        print(f"<== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(" ".join(command[1:]))
    return failed


def assemble(results_dir: Path, output: Path) -> Path:
    files = {path.name: path for path in results_dir.glob("*.md")}
    ordered = [files[name] for name in SECTION_ORDER if name in files]
    ordered += [files[name] for name in sorted(files) if name not in SECTION_ORDER]
    sections = [path.read_text(encoding="utf-8").strip() for path in ordered]
    missing = [name for name in SECTION_ORDER if name not in files]
    pending = ""
    if missing:
        pending = "\n## Not measured yet\n\nNo figure is claimed for these (`python -m bench.run_all` runs them):\n\n"
        pending += "\n".join(f"- `{name.removesuffix('.md')}`" for name in missing) + "\n"
    text = HEADER + "\n## Results\n\n" + "\n\n".join(sections) + "\n" + pending
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} ({len(sections)} sections)")
    return output


def main() -> None:
    args = parse_args()
    if args.assemble:
        assemble(RESULTS_DIR, args.output)
        return
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench-smoke-") as scratch:
            failed = run_scripts(args, Path(scratch))
            print(f"smoke results: {sorted(p.name for p in Path(scratch).glob('*.md'))}")
    else:
        failed = run_scripts(args, RESULTS_DIR)
        assemble(RESULTS_DIR, args.output)
    if failed:
        print("failed:\n  " + "\n  ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
