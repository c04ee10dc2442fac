"""The ``suite sentiment|monitor|alerts`` commands and the ``/api/sentiment`` routes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from suite.cli import main

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAINING = '[training]\nnum_threads = 1\ndevice = "cpu"\n'


@pytest.fixture
def suite(isolated_suite_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture, other_plugins: list[str]):
    """Run ``suite ...`` in-process (config in ./suite.toml); returns (exit code, stdout, stderr)."""
    config = "".join(f"[plugins.{name}]\nenabled = false\n" for name in other_plugins) + TRAINING
    (tmp_path / "suite.toml").write_text(config, encoding="utf-8")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        captured = capsys.readouterr()
        return exit_info.value.code or 0, captured.out, captured.err

    return run


@pytest.fixture
def with_models(isolated_suite_env: Path, trained_models: Path) -> Path:
    isolated_suite_env.mkdir(parents=True, exist_ok=True)
    os.symlink(trained_models, isolated_suite_env / "models")
    return isolated_suite_env


def is_png(data: bytes) -> bool:
    import matplotlib.image

    if not data.startswith(PNG_MAGIC):
        return False
    from io import BytesIO

    image = matplotlib.image.imread(BytesIO(data), format="png")
    return image.shape[0] > 100 and image.shape[1] > 100


def test_commands_without_a_model_say_how_to_train(suite) -> None:
    code, _, err = suite("sentiment", "score", "Shares fell")
    assert code == 1 and "error: no sentiment model yet: run `suite sentiment train`" in err
    code, _, err = suite("monitor", "run-once")
    assert code == 1 and "no sentiment model yet" in err


def test_train_command_registers_a_version(suite, tmp_path: Path) -> None:
    data = tmp_path / "tiny.csv"
    rows = ["text,label"] + [f"Profit rose strongly in quarter {n},positive" for n in range(8)]
    rows += [f"Losses widened badly in quarter {n},negative" for n in range(8)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, err = suite("sentiment", "train", "--data", str(data), "--max-steps", "2")
    assert code == 0, err  # what the data supports was trained; the topic task says why it was not
    assert "registered sentiment/sentiment@v1" in out
    [skipped] = [line for line in out.splitlines() if line.startswith("skipped")]
    assert skipped.startswith("skipped sentiment:topic: the data has no 'topic' column") and "topic = false" in skipped
    code, out, err = suite("sentiment", "train", "--data", str(data), "--max-steps", "1", "--topic")
    assert code == 2 and "error: the data has no 'topic' column" in err  # asked for by name: a failure
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,great\n", encoding="utf-8")
    code, _, err = suite("sentiment", "train", "--data", str(bad), "--no-topic")
    assert code == 2 and "label 'great' is not one of negative, neutral, positive" in err


def test_score_commands(suite, with_models: Path, tmp_path: Path) -> None:
    code, out, err = suite(
        "sentiment", "score", "--json", "Regulators fined the bank heavily.", "Profit beat forecasts."
    )
    assert code == 0, err
    first, second = (json.loads(line) for line in out.splitlines())
    assert set(first["probabilities"]) == {"negative", "neutral", "positive"}
    assert first["score"] < second["score"]
    texts = tmp_path / "texts.txt"
    texts.write_text("Shares plunged.\n\nRevenue jumped.\n", encoding="utf-8")
    code, out, _ = suite("sentiment", "score", "--file", str(texts))
    assert code == 0 and "Shares plunged." in out and "Revenue jumped." in out
    assert "neutral" in out and "P(positive) - P(negative)" in out  # the three probabilities, the score explained
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\xe9 sales fell\n".encode("latin-1"))
    code, _, err = suite("sentiment", "score", "--file", str(latin))
    assert code == 2 and "not UTF-8 text" in err
    code, _, err = suite("sentiment", "score", "  ")
    assert code == 2 and "text 1 is empty" in err


def test_monitor_alerts_and_report_commands(suite, with_models: Path, tmp_path: Path) -> None:
    code, out, err = suite("monitor", "run-once", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "ok" and run["counts"]["new"] == 41 and run["counts"]["alerts"] >= 1
    # run-once queues each alert for the log sink, then one delivery pass sends them
    assert run["deliveries"] == {"sent": run["counts"]["alerts"], "failed": 0, "given_up": 0}
    code, out, _ = suite("alerts", "deliveries")
    assert code == 0 and out.count(" log ") == run["counts"]["alerts"] and "sent" in out
    code, out, _ = suite("alerts", "deliveries", "--failed")
    assert code == 0 and "no alert deliveries match" in out
    code, _, err = suite("alerts", "redeliver", "9999")
    assert code == 2 and err.strip() == "error: no alert delivery with id 9999"
    code, out, _ = suite("monitor", "runs")
    assert code == 0 and "ok" in out
    code, out, _ = suite("monitor", "runs", str(run["id"]), "--json")
    assert json.loads(out)[0]["id"] == run["id"]

    code, out, _ = suite("alerts", "list", "--json")
    alerts = json.loads(out)
    assert alerts and {a["entity"] for a in alerts} == {"Northwind Bank"}
    alert_id = alerts[0]["id"]
    assert [(d["sink"], d["status"]) for d in alerts[0]["deliveries"]] == [("log", "sent")]
    code, out, _ = suite("alerts", "show", str(alert_id))
    assert code == 0 and f"alert {alert_id}" in out and "https://" in out and "log: sent" in out
    code, out, _ = suite("alerts", "ack", str(alert_id), "--by", "ana")
    assert code == 0 and f"alert {alert_id} acknowledged by ana" in out
    code, out, _ = suite("alerts", "list", "--json")
    assert alert_id not in [a["id"] for a in json.loads(out)]
    code, out, _ = suite("alerts", "list", "--all", "--json")
    acked = next(a for a in json.loads(out) if a["id"] == alert_id)
    assert acked["acknowledged"] and acked["acknowledged_by"] == "ana"
    code, _, err = suite("alerts", "ack", "9999")
    assert code == 2 and "no alert with id 9999" in err

    chart = tmp_path / "out" / "northwind.png"
    code, out, err = suite("monitor", "report", "$NWBK", "--output", str(chart), "--bucket", "6h")
    assert code == 0, err
    assert "Northwind Bank" in out and "current" in out and chart.is_file()
    assert is_png(chart.read_bytes())
    code, out, _ = suite("monitor", "report", "northwind bank", "--json")
    report = json.loads(out)
    assert report["comparison"]["current"]["volume"] == 9 and report["alerts"]
    code, _, err = suite("monitor", "report", "Umbrella Corp")
    assert code == 2 and "'Umbrella Corp' is not on the watchlist" in err

    code, out, err = suite("monitor", "backfill", "--since", "1d", "--no-fetch", "--json")
    assert code == 0, err
    assert json.loads(out)["trigger"] == "backfill"
    code, _, err = suite("monitor", "backfill", "--since", "someday")
    assert code == 2 and "--since: expected a date" in err


def test_http_routes(trained_context) -> None:
    from fastapi.testclient import TestClient

    from suite.app import create_app

    ctx = trained_context()
    with TestClient(create_app(ctx)) as client:
        scored = client.post("/api/sentiment/score", json={"texts": ["Shares plunged after the fraud probe."]})
        assert scored.status_code == 200, scored.text
        body = scored.json()
        assert body["model"] == "sentiment/sentiment@v1" and body["results"][0]["label"] in (
            "negative",
            "neutral",
            "positive",
        )
        assert client.post("/api/sentiment/score", json={"texts": [""]}).status_code == 422
        assert client.post("/api/sentiment/score", json={"texts": []}).status_code == 422

        from plugins.sentiment.monitor import monitor_for

        monitor_for(ctx).run_once()
        entities = {e["name"]: e for e in client.get("/api/sentiment/entities").json()}
        assert entities["Northwind Bank"]["current"]["volume"] == 9 and entities["Northwind Bank"]["ticker"] == "NWBK"
        topics = client.get("/api/sentiment/topics").json()
        assert topics and all(t["entity"] is None for t in topics)
        series = client.get("/api/sentiment/entities/NWBK/series", params={"bucket": "6h", "days": 2}).json()
        assert series["entity"] == "Northwind Bank" and len(series["series"]) == 8
        assert sum(b["volume"] for b in series["series"]) >= 9
        assert client.get("/api/sentiment/entities/Northwind Bank/series", params={"bucket": "soon"}).status_code == 422
        assert client.get("/api/sentiment/entities/Umbrella/series").status_code == 404
        chart = client.get("/api/sentiment/entities/Northwind Bank/chart.png")
        assert chart.status_code == 200 and chart.headers["content-type"] == "image/png" and is_png(chart.content)

        alerts = client.get("/api/sentiment/alerts").json()
        assert alerts and alerts[0]["evidence"]
        alert_id = alerts[0]["id"]
        [queued] = alerts[0]["deliveries"]
        assert (queued["sink"], queued["status"]) == ("log", "pending")
        pending = client.get("/api/sentiment/deliveries", params={"status": ["pending", "failed"]}).json()
        assert len(pending) == len(alerts) and queued["id"] in [d["id"] for d in pending]
        ctx.alert_outbox.deliver_due()
        sent = client.get(f"/api/sentiment/deliveries/{queued['id']}").json()
        assert sent["status"] == "sent" and [a["outcome"] for a in sent["attempt_log"]] == ["sent"]
        refused = client.post(f"/api/sentiment/deliveries/{queued['id']}/redeliver")
        assert refused.status_code == 422 and "nothing to redeliver" in refused.text
        assert client.post("/api/sentiment/deliveries/9999/redeliver").status_code == 404
        assert client.get("/api/sentiment/deliveries", params={"status": "lost"}).status_code == 422
        acked = client.post(f"/api/sentiment/alerts/{alert_id}/ack", json={"by": "bot"}).json()
        assert acked["acknowledged"] and acked["acknowledged_by"] == "bot"
        assert alert_id not in [a["id"] for a in client.get("/api/sentiment/alerts").json()]
        assert alert_id in [a["id"] for a in client.get("/api/sentiment/alerts", params={"all": True}).json()]
        assert client.post("/api/sentiment/alerts/9999/ack").status_code == 404

        doc_id = alerts[0]["evidence"][0]["id"]
        document = client.get(f"/api/sentiment/documents/{doc_id}").json()
        assert document["entities"] == ["Northwind Bank"] and document["status"] == "scored"
        assert client.get("/api/sentiment/documents/999999").status_code == 404
        runs = client.get("/api/sentiment/runs").json()
        assert runs[0]["status"] == "ok"
        assert client.get(f"/api/sentiment/runs/{runs[0]['id']}").json()["counts"]["new"] == 41
