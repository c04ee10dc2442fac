"""HTTP load: requests per second and p50/p99 latency of the chatbot and sentiment routes.

1. Trains the chatbot and sentiment models on their sample data in a temp data dir
   (``suite train`` in a subprocess with only those plugins enabled: every task they
   declare, sentiment's topic model included, with the plugins' own settings).
2. For 1 and 2 worker processes, starts ``suite serve --workers N`` on 127.0.0.1 with only
   those two plugins enabled, waits for ``/ready``, and drives each route from a second
   process for ``--duration`` seconds (or ``--max-requests``, whichever ends first) with
   ``--connections`` concurrent connections, after a warm-up that is not counted (rounds
   of ``--warmup`` seconds until every connection has had answers: workers load their
   models on the first request):

   - ``POST /api/chatbot/ask`` with messages from :data:`CHAT_MESSAGES`, a new conversation each;
   - ``POST /api/sentiment/score`` with one sentence from :data:`SENTENCES`.

   The load comes from wrk (``apt-get install wrk``) with a Lua script, or, without wrk,
   from a small asyncio httpx client in a separate process (``--client``).
3. Reports requests, rps, p50/p99 latency, errors (non-2xx and socket errors) and the
   resident memory (RSS and USS) of each worker process after the load.

The client runs on the same machine as the server and shares its cores: on a small
machine the figures are a floor. Access logs are off (``SUITE_LOG_LEVEL=WARNING``) and the
rate limit is raised out of the way; everything else is the default configuration.

    python -m bench.http_load                                     # full run (about 5 minutes)
    python -m bench.http_load --max-steps 5 --duration 3 --warmup 1   # smoke run

The server set-up (:func:`train_models`, :func:`suite_env`, :func:`running_server`) is
shared with ``bench.http_fuzz``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib.metadata import entry_points
from multiprocessing import get_context
from pathlib import Path

import httpx
import psutil

from bench.common import ROOT, command_line, percentile, table, write_results

CHAT_MESSAGES = [
    "I want to send money to my sister",
    "I forgot my PIN",
    "my card has not arrived yet",
    "how do I top up my account?",
    "what is the exchange rate for euros",
    "I want to talk to a human",
    "why was I charged a fee for my transfer",
    "what is the capital of Peru",
]
SENTENCES = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company's net sales fell by 5% to EUR 2.2 bn in the third quarter.",
    "The board will propose a dividend of EUR 0.50 per share for the financial year.",
    "Shares of the lender plunged after it warned of larger loan losses.",
    "The contract is valued at about USD 30 million and deliveries begin next spring.",
    "Analysts expect the merger to lift earnings per share within two years.",
]
ROUTES = {
    "chatbot": ("/api/chatbot/ask", [{"message": m} for m in CHAT_MESSAGES]),
    "sentiment": ("/api/sentiment/score", [{"texts": [s]} for s in SENTENCES]),
}
READY_TIMEOUT_S = 180.0
WARMUP_LIMIT_S = 180.0
NO_RATE_LIMIT = str(10**9)


# -- server set-up (shared with bench.http_fuzz) -----------------------------------------------
def suite_env(data_dir: Path, plugins: list[str] | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment for ``suite`` subprocesses: ``data_dir``, only ``plugins`` enabled (None: all).

    No access log and no practical rate limit, so that neither shapes the measurements.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUITE_")}
    env.update(
        SUITE_DATA_DIR=str(data_dir),
        SUITE_LOG_LEVEL="WARNING",
        SUITE_HTTP__RATE_LIMIT_PER_MINUTE=NO_RATE_LIMIT,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    if plugins is not None:
        for name in {ep.name for ep in entry_points(group="suite.plugins")} - set(plugins):
            env[f"SUITE_PLUGINS__{name.upper()}__ENABLED"] = "false"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads in each worker
    return env


def train_models(env: dict[str, str], max_steps: int | None = None) -> list[str]:
    """``suite train`` (every task of the plugins ``env`` enables) in a subprocess; the ``registered`` lines."""
    command = [sys.executable, "-m", "suite", "train"]
    if max_steps:
        command += ["--max-steps", str(max_steps)]
    print(f"training: {' '.join(command[2:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    registered = [line.strip() for line in done.stdout.splitlines() if line.startswith("registered ")]
    print(f"trained in {time.perf_counter() - started:.0f} s", *registered, sep="\n  ", flush=True)
    return registered


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    process: psutil.Process  # ``suite serve``: the uvicorn master, or the only worker
    workers: int
    log: Path

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests: the spawned children, or the master itself."""
        if self.workers == 1:
            return [self.process]
        children = self.process.children()
        return [p for p in children if "spawn_main" in " ".join(p.cmdline())]


@contextmanager
def running_server(env: dict[str, str], workers: int = 1, log_dir: Path | None = None) -> Iterator[Server]:
    """``suite serve --workers N`` on a free loopback port, ready (``/ready`` 200), stopped on exit."""
    port = free_port()
    log = Path(log_dir or tempfile.mkdtemp(prefix="suite-serve-")) / f"serve-{workers}w-{port}.log"
    command = [sys.executable, "-m", "suite", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)]
    with log.open("wb") as sink:
        # Its own session, so that stopping it reaches the workers it spawned and nothing else.
        popen = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", psutil.Process(popen.pid), workers, log)
    try:
        _wait_ready(server, popen)
        yield server
    finally:
        _stop(popen)


def _wait_ready(server: Server, popen: subprocess.Popen) -> None:
    started = time.perf_counter()
    deadline = started + READY_TIMEOUT_S
    answer = "no answer"
    while time.perf_counter() < deadline:
        if popen.poll() is not None:
            raise SystemExit(f"suite serve exited with {popen.returncode}:\n{_tail(server.log)}")
        try:
            response = httpx.get(f"{server.url}/ready", timeout=10)
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if response.status_code == 200:
            print(f"{server.workers} worker(s) ready in {time.perf_counter() - started:.0f} s", flush=True)
            return
        answer = response.text
        time.sleep(0.5)
    raise SystemExit(f"suite serve not ready after {READY_TIMEOUT_S:.0f} s: {answer}\n{_tail(server.log)}")


def _stop(popen: subprocess.Popen) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully, workers included
        with suppress(subprocess.TimeoutExpired):
            popen.wait(30)
    with suppress(ProcessLookupError):  # whatever is left of the session this server started
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- load -------------------------------------------------------------------------------------
@dataclass
class Load:
    route: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def row(self) -> list[object]:
        latency = [f"{self.p50_ms:.0f}", f"{self.p99_ms:.0f}"]
        return [f"POST {self.route}", self.requests, f"{self.rps:.1f}", *latency, self.errors]


def drive(client: str, url: str, path: str, bodies: list[dict], connections: int, seconds: float, limit: int) -> Load:
    """``connections`` concurrent POSTs of ``bodies`` (in turn) to ``url + path`` from a second process."""
    if client == "wrk":
        return _drive_wrk(url, path, bodies, connections, seconds, limit)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_drive_httpx, url, path, bodies, connections, seconds, limit).result()


WRK_SCRIPT = """
local bodies = {%(bodies)s}
local headers = {["Content-Type"] = "application/json"}
local sent, answered = 0, 0
request = function()
  sent = sent + 1
  return wrk.format("POST", "%(path)s", headers, bodies[sent %% #bodies + 1])
end
response = function(status, headers, body)
  answered = answered + 1
  if answered >= %(limit)d then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local fields = '"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p99_us": %%d'
  io.write(string.format("\\nRESULT {" .. fields .. "}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _drive_wrk(url: str, path: str, bodies: list[dict], connections: int, seconds: float, limit: int) -> Load:
    lua = ", ".join(f"[==[{json.dumps(body)}]==]" for body in bodies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"bodies": lua, "path": path, "limit": limit})
    try:  # one wrk thread is plenty at these rates and leaves the cores to the server
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s"]
        done = subprocess.run([*command, "-s", script.name, url], capture_output=True, text=True, check=True)
    finally:
        os.unlink(script.name)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    found = json.loads(line.removeprefix("RESULT "))
    return Load(
        route=path,
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        errors=found["errors"],
        p50_ms=found["p50_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
    )


def _drive_httpx(url: str, path: str, bodies: list[dict], connections: int, seconds: float, limit: int) -> Load:
    latencies: list[float] = []
    errors = 0

    async def user(client: httpx.AsyncClient, deadline: float, offset: int) -> None:
        nonlocal errors
        turn = offset
        while time.perf_counter() < deadline and len(latencies) + errors < limit:
            turn += 1
            sent = time.perf_counter()
            try:
                response = await client.post(path, json=bodies[turn % len(bodies)])
                ok = response.is_success
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    async def run() -> float:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            started = time.perf_counter()
            await asyncio.gather(*(user(client, started + seconds, i) for i in range(connections)))
            return time.perf_counter() - started

    elapsed = asyncio.run(run())
    ms = [s * 1000 for s in latencies] or [float("nan")]
    return Load(path, len(latencies) + errors, elapsed, errors, percentile(ms, 50), percentile(ms, 99))


def warm_up(client: str, url: str, path: str, bodies: list[dict], args: argparse.Namespace) -> None:
    """Uncounted rounds of load until every connection had answers (at most ``WARMUP_LIMIT_S``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < WARMUP_LIMIT_S:
        round_ = drive(client, url, path, bodies, args.connections, args.warmup, args.max_requests)
        if round_.requests - round_.errors >= 2 * args.connections:
            return
    raise SystemExit(f"{path}: too few answers after {WARMUP_LIMIT_S:.0f} s of warm-up")


# -- the benchmark ----------------------------------------------------------------------------
@dataclass
class Memory:
    workers: int
    process: str
    rss_mb: float
    uss_mb: float


def memory(server: Server) -> list[Memory]:
    rows = []
    for index, process in enumerate(server.worker_processes(), 1):
        info = process.memory_full_info()
        rows.append(Memory(server.workers, f"worker {index}", info.rss / 2**20, info.uss / 2**20))
    if server.workers > 1:
        info = server.process.memory_full_info()
        rows.append(Memory(server.workers, "master (serves no request)", info.rss / 2**20, info.uss / 2**20))
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--routes", default="chatbot,sentiment", help=f"among {', '.join(ROUTES)}")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per route and setting")
    parser.add_argument("--max-requests", type=int, default=100_000, help="stop a route's load after this many")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds per round of uncounted warm-up")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (closed loop)")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto", help="auto: wrk if installed")
    parser.add_argument("--max-steps", type=int, default=None, help="cap training steps (smoke runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (OMP_NUM_THREADS)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    worker_counts = [int(n) for n in args.workers.split(",")]
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if unknown := set(routes) - set(ROUTES):
        raise SystemExit(f"unknown route(s) {', '.join(sorted(unknown))} (choose {', '.join(ROUTES)})")
    load_before = os.getloadavg()
    loads: list[tuple[int, Load]] = []
    memories: list[Memory] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-load-") as scratch:
        env = suite_env(Path(scratch) / "data", ["chatbot", "sentiment"], args.threads)
        registered = train_models(env, args.max_steps)
        for workers in worker_counts:
            with running_server(env, workers, Path(scratch)) as server:
                for route in routes:
                    path, bodies = ROUTES[route]
                    warm_up(client, server.url, path, bodies, args)
                    load = drive(client, server.url, path, bodies, args.connections, args.duration, args.max_requests)
                    print(f"{workers} worker(s) {path}: {load.rps:.1f} rps, p50 {load.p50_ms:.0f} ms", flush=True)
                    loads.append((workers, load))
                memories += memory(server)
    report(args, client, registered, loads, memories, load_before)


def averages(values: tuple[float, ...]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def report(args, client, registered, loads: list[tuple[int, Load]], memories: list[Memory], load_before) -> None:
    rows = [[workers, *load.row()] for workers, load in loads]
    memory_rows = [[m.workers, m.process, f"{m.rss_mb:.0f}", f"{m.uss_mb:.0f}"] for m in memories]
    tool = "wrk 1 thread, Lua script" if client == "wrk" else "asyncio + httpx, separate process"
    models = ", ".join(line.removeprefix("registered ").split("  ")[0] for line in registered)
    steps = f"at most {args.max_steps} steps" if args.max_steps else "the plugins' default settings"
    warmup = f"warm-up rounds of {args.warmup:g} s until every connection had answers"
    body = f"""
`suite serve --workers N` on 127.0.0.1 with only the chatbot and sentiment plugins enabled;
models trained on the plugins' sample data with {steps}: {models}.

Load from a second process ({tool}): {args.connections} connections in a closed loop, for
{args.duration:g} s per route (at most {args.max_requests} requests), after uncounted {warmup}.
Chatbot: {len(CHAT_MESSAGES)} messages in turn, each starting a new conversation. Sentiment: one
sentence per request ({len(SENTENCES)} in turn). Errors are non-2xx answers and socket errors.
Torch threads per worker: {args.threads or "torch's default"}. The client shares the machine's
cores with the server and anything else running there; load average (1/5/15 min) before the
run {averages(load_before)}, after it {averages(os.getloadavg())}.

{table(["workers", "route", "requests", "req/s", "p50 ms", "p99 ms", "errors"], rows)}

Memory of each process after the load (RSS: resident; USS: memory no other process shares):

{table(["workers", "process", "RSS MiB", "USS MiB"], memory_rows)}
"""
    write_results("HTTP load", command_line("bench.http_load"), body)


if __name__ == "__main__":
    main()
