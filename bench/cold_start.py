"""Cold start of the CLI: ``suite --help`` and one request of each plugin from a fresh process,
side by side with ``python -c "import torch"`` (the floor of any command that runs a model) in
one hyperfine run (Debian package ``hyperfine``).

    python -m bench.cold_start                          # quick-starts a data dir first (few training steps)
    python -m bench.cold_start --data-dir DIR           # an existing quick-started data dir
    python -m bench.cold_start --baseline ../main       # also the same commands from another checkout

Each command runs as ``env PYTHONPATH=CHECKOUT python -m suite ...`` with one warm-up run (the
files are in the page cache; the process, its imports and its models are cold). Each checkout's
modules are byte-compiled first, as ``make install`` does, so that ``PYTHONDONTWRITEBYTECODE``
in the environment cannot make one side compile its sources on every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, command_line, table, write_results

SMALL_TRAINING = """\
[training]
num_threads = 1
[plugins.chatbot]
max_steps = 6
refit = "never"
[plugins.recommender.training]
max_steps = 2
[plugins.sentiment.training]
max_steps = 6
"""
REQUESTS = [
    ("suite --help", ["--help"]),
    ("suite chatbot --help", ["chatbot", "--help"]),
    ("suite chatbot ask", ["chatbot", "ask", "how do I activate my card?"]),
    # transfer_money's template wants an amount and a date: spaCy's entity recogniser loads.
    ("suite chatbot ask (amount and date)", ["chatbot", "ask", "I want to send 50 pounds tomorrow"]),
    ("suite chatbot ask (out of scope)", ["chatbot", "ask", "who won the football world cup in 1966"]),
    ("suite sentiment score", ["sentiment", "score", "Shares of Northwind Bank plunged after the profit warning"]),
    ("suite recommend", ["recommend", "maya", "-k", "5"]),
]
# The out-of-scope question is embedded for retrieval: its cached vector is removed before every run,
# so each run embeds it as a new question would be.
FRESH_QUERY = {"suite chatbot ask (out of scope)"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="a quick-started data dir (default: make one)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to time side by side")
    parser.add_argument("--runs", type=int, default=5, help="hyperfine runs per command")
    return parser.parse_args()


def quickstart(data_dir: Path, config: Path) -> None:
    env = {**os.environ, "SUITE_DATA_DIR": str(data_dir), "SUITE_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "suite", "-q", "quickstart"], env=env, check=True, stdout=subprocess.DEVNULL)


def suite_command(checkout: Path, args: list[str]) -> str:
    """``suite ARGS`` from ``checkout``, with that checkout's example plugin (installed or not)."""
    path = os.pathsep.join(str(p) for p in (checkout, checkout / "examples" / "suite-ticket-router") if p.is_dir())
    return shlex.join(["env", f"PYTHONPATH={path}", sys.executable, "-m", "suite", *args])


def byte_compile(checkout: Path) -> None:
    folders = [str(checkout / name) for name in ("suite", "services", "plugins")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True, stdout=subprocess.DEVNULL)


def hyperfine(commands: list[tuple[str, str]], runs: int, env: dict[str, str], data_dir: Path) -> list[dict]:
    forget_vectors = shlex.join(["rm", "-f", *(str(p) for p in (data_dir / "cache" / "embeddings").glob("vectors*"))])
    with tempfile.NamedTemporaryFile(suffix=".json") as export:
        argv = ["hyperfine", "--shell=none", "--warmup", "1", "--runs", str(runs), "--export-json", export.name]
        for name, _ in commands:
            argv += ["--prepare", forget_vectors if name.removesuffix(" (baseline)") in FRESH_QUERY else "true"]
        for name, command in commands:
            argv += ["--command-name", name, command]
        # Outside both checkouts: `python -m` puts the working directory first on sys.path.
        subprocess.run(argv, env=env, check=True, cwd=data_dir.parent)
        return json.loads(Path(export.name).read_text())["results"]


def main() -> None:
    args = parse_args()
    if shutil.which("hyperfine") is None:
        print("SKIP: hyperfine not found (apt-get install hyperfine)")
        return
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "small.toml"
        config.write_text(SMALL_TRAINING)
        data_dir = args.data_dir or Path(scratch) / "data"
        if args.data_dir is None:
            quickstart(data_dir, config)
        env = {**os.environ, "SUITE_DATA_DIR": str(data_dir), "SUITE_CONFIG": str(config), "COLUMNS": "80"}
        for checkout in filter(None, (ROOT, args.baseline)):
            byte_compile(checkout)
        commands = [('python -c "import torch"', shlex.join([sys.executable, "-c", "import torch"]))]
        for name, argv in REQUESTS:
            commands.append((name, suite_command(ROOT, argv)))
            if args.baseline:
                commands.append((f"{name} (baseline)", suite_command(args.baseline.resolve(), argv)))
        load_before = os.getloadavg()[0]
        results = hyperfine(commands, args.runs, env, data_dir)
        load_after = os.getloadavg()[0]
    floor = results[0]["mean"]
    rows = [
        [
            r["command"],
            f"{r['mean']:.3f} ± {r['stddev']:.3f}",
            f"{r['min']:.3f}",
            f"{r['user'] + r['system']:.3f}",
            f"{r['mean'] / floor:.2f}x",
        ]
        for r in results
    ]
    body = (
        f"hyperfine, {args.runs} runs after 1 warm-up run each, all commands in one invocation; a data dir "
        f"quick-started with a few training steps (the models have the default size); COLUMNS=80. One-minute "
        f"load average {load_before:.1f} before, {load_after:.1f} after (2 cores: above 2 the machine was shared "
        f"with other work, so compare the ratios and the CPU seconds, not the wall seconds). The out-of-scope "
        f"question's cached vector is deleted before each of its runs, so every run embeds it."
        + (f" Baseline: the same commands from `{args.baseline}`." if args.baseline else "")
        + "\n\n"
        + table(["command", "mean s", "min s", "CPU s (user + system)", "mean / import torch"], rows)
    )
    write_results("Cold start", command_line("bench.cold_start"), body)


if __name__ == "__main__":
    main()
