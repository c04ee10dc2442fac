"""``suite alerts deliveries|redeliver`` and the core's delivery job, on a real outbox and webhook receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from services.alerts import Alert
from services.errors import NotFoundError
from suite.builtins import DELIVERY_JOB
from suite.cli import main
from suite.commands.alerts import add_delivery_commands
from suite.config import Settings
from suite.context import SuiteContext


@pytest.fixture
def ctx(tmp_path: Path, webhook_server) -> SuiteContext:
    settings = Settings(data_dir=tmp_path / "data", alerts={"webhooks": [{"url": webhook_server.url}]})
    ctx = SuiteContext(settings)
    yield ctx
    ctx.shutdown()


@pytest.fixture
def alerts_cli(ctx: SuiteContext):
    app = typer.Typer()
    add_delivery_commands(app, ctx)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), terminal_width=80)


def raise_alerts(ctx: SuiteContext, count: int) -> None:
    outbox = ctx.alert_outbox
    with ctx.database.begin() as conn:
        for number in range(1, count + 1):
            alert = Alert(key=f"k{number}", title=f"alert {number}", message="m", severity="info", source="tests")
            outbox.enqueue(conn, alert, ref=number)


def test_deliveries_lists_each_alert_and_sink_at_80_columns(ctx, alerts_cli, webhook_server):
    webhook_server.script = [(503, 0)]  # the first webhook delivery fails, the second goes through
    raise_alerts(ctx, 2)
    result = ctx.alert_outbox.deliver_due()
    assert (result.sent, result.failed) == (3, 1)  # log x2, webhook x1 sent; one webhook to retry

    shown = alerts_cli("deliveries")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.strip()[:1].isdigit()]
    assert len(rows) == 4
    assert sum("sent" in row for row in rows) == 3 and sum("failed" in row for row in rows) == 1
    assert any("HTTP 503" in row for row in rows)

    failed = alerts_cli("deliveries", "--failed", "--json")
    [record] = json.loads(failed.output)
    assert record["status"] == "failed" and record["attempts"] == 1 and record["next_attempt_at"]
    assert json.loads(alerts_cli("deliveries", "--pending", "--json").output) == [record]

    again = alerts_cli("redeliver", str(record["id"]))
    assert again.exit_code == 0 and f"alert delivery {record['id']}" in again.output
    assert ctx.alert_outbox.deliver_due().sent == 1
    assert "no alert deliveries match" in alerts_cli("deliveries", "--pending").output

    unknown = alerts_cli("redeliver", "999")
    assert isinstance(unknown.exception, NotFoundError)


def test_redeliver_of_an_unknown_id_is_one_line_and_non_zero(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["alerts", "redeliver", "4242"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code != 0
    assert err == "error: no alert delivery with id 4242"


def test_the_core_declares_the_delivery_job_without_listing_a_plugin(ctx, webhook_server):
    [job] = [job for job in ctx.jobs() if job.name == DELIVERY_JOB]
    assert job.plugin == "suite" and job.trigger_args == {"seconds": 60}
    assert "suite" not in ctx.plugins.names
    raise_alerts(ctx, 1)
    assert job.func() == {"sent": 2, "failed": 0, "given_up": 0}
    assert len(webhook_server.received) == 1
