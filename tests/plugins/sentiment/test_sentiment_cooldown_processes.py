"""Alert cool-downs hold across processes: the last alert of each rule and subject is read from the
shared database (``sentiment_alerts``), and monitoring runs are one at a time (a lock in the data dir).

Two processes run the monitor at the same moment on one data dir: one raises the alerts, the other
waits for it and then holds the same alerts back, and nothing is raised twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path

from sqlalchemy import create_engine, select

from plugins.sentiment.store import alert_table

OTHER_PLUGINS_OFF = {
    ep.name: {"enabled": False} for ep in entry_points(group="suite.plugins") if ep.name != "sentiment"
}

# Runs in a fresh interpreter: argv = data dir, options JSON. A keyword scorer stands in for the
# model: this is about the cool-down state, not about scoring.
MONITOR_PROCESS = """
import json, sys, time
from plugins.sentiment.model import SentimentScore
from plugins.sentiment.monitor import Monitor
from suite.context import SuiteContext
from suite.errors import SuiteError

def scorer(texts):
    negative = SentimentScore("negative", -0.9, {"negative": 0.95, "neutral": 0.03, "positive": 0.02})
    positive = SentimentScore("positive", 0.9, {"negative": 0.02, "neutral": 0.03, "positive": 0.95})
    return [negative if "plunged" in text else positive for text in texts]

data_dir, plugins = sys.argv[1], json.loads(sys.argv[2])
ctx = SuiteContext.create(None, data_dir=data_dir, plugins=plugins, training={"num_threads": 1, "device": "cpu"})
ctx.startup()
waits, deadline = 0, time.monotonic() + 90
while True:
    try:
        record = Monitor(ctx, scorer=scorer, topic_scorer=lambda texts: None).run_once()
        break
    except SuiteError as exc:  # the other process holds the run lock: wait for it, as a retry would
        if "in progress" not in str(exc) or time.monotonic() > deadline:
            raise
        waits += 1
        time.sleep(0.1)
ctx.shutdown()
print(json.dumps({"alerts": record.counts.get("alerts", 0), "suppressed": record.counts.get("suppressed", 0),
                  "waits": waits, "status": record.status}))
"""


def negative_news(path: Path, count: int = 8) -> Path:
    now = datetime.now(UTC)
    lines = [
        {
            "id": f"n{n}",
            "title": f"Northwind Bank story {n}",
            "text": f"Northwind Bank shares plunged after a fine ({n}).",
            "published_at": (now - timedelta(minutes=10 * n + 5)).isoformat(),
        }
        for n in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_two_monitor_processes_share_the_cooldowns_and_raise_nothing_twice(tmp_path: Path) -> None:
    options = {
        "sources": [{"name": "inbox", "kind": "file", "url_or_path": str(negative_news(tmp_path / "news.jsonl"))}],
        "rules": [{"name": "negative-share", "kind": "threshold", "params": {"min_documents": 3}}],
        "schedule_minutes": 0,
    }
    plugins = json.dumps({**OTHER_PLUGINS_OFF, "sentiment": options})
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    engine = create_engine(f"sqlite:///{data_dir / 'suite.db'}")
    # No tables yet: both processes create them through the migrations, which take turns on the database lock.
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUITE_")}
    command = [sys.executable, "-c", MONITOR_PROCESS, str(data_dir), plugins]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        for _ in range(2)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    first, second = sorted(results, key=lambda result: -result["alerts"])
    assert first["status"] == second["status"] == "ok"
    assert first["alerts"] >= 1 and first["suppressed"] == 0
    assert second["alerts"] == 0 and second["suppressed"] == first["alerts"]  # the other's alerts, held back
    with engine.connect() as conn:
        keys = Counter(conn.scalars(select(alert_table.c.key)))
    engine.dispose()
    assert len(keys) == first["alerts"] and set(keys.values()) == {1}, keys
