"""Bad input: schemathesis over the OpenAPI schema of a live ``suite serve``, every route.

1. Trains every installed plugin's models on its sample data in a temp data dir
   (``suite train --max-steps 20``: the fuzzer needs working models, not good ones).
2. Starts ``suite serve`` on 127.0.0.1 (1 worker, set up as in ``bench.http_load``) and runs
   ``schemathesis run <url>/openapi.json`` over every operation of the schema, in all of
   schemathesis' phases (schema examples, coverage of the constraints' edges, random
   fuzzing, stateful sequences that reuse ids from earlier answers), valid and invalid
   inputs, at most ``--max-examples`` generated cases per operation and phase.
3. Reports, per route, the requests sent, the answers by status, the server errors (5xx)
   and the answers that break the route's documented response schema (with the default
   ``--checks``), plus the tracebacks in the server's log.

Target: no server error. Bad input must get a 4xx with the standard error body.

    python -m bench.http_fuzz                                  # full run (a few minutes)
    python -m bench.http_fuzz --max-examples 5 --max-steps 3   # smoke run
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.common import command_line, table, write_results
from bench.http_load import running_server, suite_env, train_models

DEFAULT_CHECKS = "not_a_server_error,response_schema_conformance"
OTHER_METHODS = "other methods on the schema's paths"
OTHER_PATHS = "paths not in the schema"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=50, help="generated cases per operation and phase")
    parser.add_argument("--checks", default=DEFAULT_CHECKS, help="schemathesis checks, comma-separated")
    parser.add_argument("--seed", type=int, default=42, help="schemathesis' random seed (reproducible runs)")
    parser.add_argument("--max-steps", type=int, default=20, help="training steps per model (0: plugins' own)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if not executable:
        raise SystemExit("schemathesis is not installed: pip install schemathesis")
    with tempfile.TemporaryDirectory(prefix="bench-http-fuzz-") as scratch:
        work = Path(scratch)
        env = suite_env(work / "data")
        train_models(env, args.max_steps or None)
        with running_server(env, workers=1, log_dir=work) as server:
            schema = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
            summary = fuzz(executable, server.url, work / "report", args)
            log = server.log
        tracebacks = log.read_text(errors="replace").count("Traceback (most recent call last)")
        entries = json.loads(next((work / "report").glob("har-*.json")).read_text())["log"]["entries"]
    report(args, schema, entries, summary, tracebacks)


def fuzz(executable: str, url: str, report_dir: Path, args: argparse.Namespace) -> dict:
    """Run schemathesis against ``url``; its JSON summary (the HAR of every request lies beside it)."""
    command = [executable, "run", f"{url}/openapi.json", "--checks", args.checks]
    command += ["--max-examples", str(args.max_examples), "--seed", str(args.seed), "--workers", "1"]
    command += ["--report", "har,json", "--report-dir", str(report_dir), "--generation-database", "none"]
    command += ["--request-timeout", "60", "--no-color"]  # a busy shared machine is slow, not broken
    print("fuzzing:", " ".join(command[1:]), flush=True)
    # Non-zero when it found failures: those are the results, read from the reports.
    done = subprocess.run(command, cwd=report_dir.parent, capture_output=True, text=True)
    reports = list(report_dir.glob("json-*.json"))
    if not reports:
        raise SystemExit(f"schemathesis failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    print(done.stdout[-6000:], flush=True)
    return json.loads(reports[0].read_text())


def operation_matcher(schema: dict):
    """``(method, url) -> "METHOD /path/{param}"`` for the operations of an OpenAPI schema."""
    patterns = []
    for path, operations in schema["paths"].items():
        regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "/?$")
        for method in operations:
            patterns.append((path.count("{"), method.upper(), regex, f"{method.upper()} {path}"))
    patterns.sort(key=lambda pattern: pattern[0])  # literal paths before templated ones

    def match(method: str, url: str) -> str:
        path = urlsplit(url).path
        found = [(wanted, label) for _, wanted, regex, label in patterns if regex.match(path)]
        for wanted, label in found:
            if wanted == method.upper():
                return label
        return OTHER_METHODS if found else OTHER_PATHS

    return match


def report(args, schema: dict, entries: list[dict], summary: dict, tracebacks: int) -> None:
    match = operation_matcher(schema)
    statuses: dict[str, Counter] = defaultdict(Counter)
    for entry in entries:
        statuses[match(entry["request"]["method"], entry["request"]["url"])][entry["response"]["status"]] += 1
    violations: Counter = Counter()
    for group in summary["failures"]:
        if group["code"] != "ST101":  # server errors are counted from the answers themselves
            for operation in group["operations"]:
                violations[operation] += 1
    operations = [f"{m.upper()} {path}" for path, methods in schema["paths"].items() for m in methods]
    labels = operations + sorted(set(statuses) - set(operations))
    rows = []
    for label in labels:
        seen = statuses[label]
        server_errors = sum(n for status, n in seen.items() if status >= 500)
        answers = ", ".join(f"{status}: {n}" for status, n in sorted(seen.items()) if status)
        rows.append([label, seen.total(), server_errors, seen[0], violations[label], answers or "none"])
    sent = sum(row[1] for row in rows)
    server_errors = sum(row[2] for row in rows)
    no_answer = sum(row[3] for row in rows)
    phases = ", ".join(name for name, phase in (summary.get("phases") or {}).items() if phase["status"] != "skipped")
    failures = "; ".join(f"{g['code']} {g['title']} ({', '.join(g['operations'])})" for g in summary["failures"])
    errors = "; ".join(f"{e['title']} ({e['count']})" for e in summary["errors"])
    body = f"""
schemathesis {version("schemathesis")} against `suite serve` (1 worker) on 127.0.0.1 with every
installed plugin enabled and trained on its sample data (at most {args.max_steps or "the plugins' own"}
steps), no API key needed on loopback. All {len(operations)} operations of `/openapi.json`; phases:
{phases}; positive and negative inputs; at most {args.max_examples} generated cases per
operation and phase; seed {args.seed}; checks: {args.checks}.

**{sent} requests sent, {server_errors} server errors (5xx)**, {no_answer} requests without an
answer, {tracebacks} tracebacks in the server log; {summary["test_cases"]["generated"]} test
cases, {summary["running_time"]:.0f} s. Failures reported by schemathesis: {failures or "none"}.
Errors: {errors or "none"}.

{table(["operation", "requests", "5xx", "no answer", "schema violations", "answers by status"], rows)}

"Other methods" are schemathesis' probes of methods a path does not declare (405 expected).
"""
    write_results("HTTP fuzz", command_line("bench.http_fuzz"), body)


if __name__ == "__main__":
    main()
