"""The plugin without a trained model: discovery, options, data files, errors, job failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from suite_ticket_router.data import load_history, load_inbox
from ticket_router_support import PLUGIN, SAMPLE_DIR, make_context
from typer.testing import CliRunner

from suite.app import create_app
from suite.cli import build_app
from suite.errors import ConfigError, DataError, NotFoundError

HOOKS = {
    "suite_cli_commands",
    "suite_cli_examples",
    "suite_config_model",
    "suite_entity_patterns",
    "suite_http_routers",
    "suite_migrations",
    "suite_plugin_info",
    "suite_scheduled_jobs",
    "suite_search_indexes",
    "suite_training_tasks",
}


def test_discovered_through_its_entry_point(ctx):
    result = CliRunner().invoke(build_app(ctx), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    info = {plugin["name"]: plugin for plugin in json.loads(result.output)}[PLUGIN]
    assert info["status"] == "enabled"
    assert set(info["hooks"]) == HOOKS
    assert info["version"] == "0.1.0"
    assert "ticket" in info["description"].lower()


def test_declares_task_index_job_and_examples(ctx):
    [task] = ctx.training_tasks()
    assert (task.qualified_name, task.kind) == ("tickets:router", "classification")
    [spec] = ctx.search_indexes()
    assert (spec.name, spec.vector_dim) == ("tickets", 384)
    [job] = [job for job in ctx.jobs() if job.plugin == PLUGIN]  # beside the core's suite.deliver_alerts
    assert (job.name, job.plugin, job.trigger, job.trigger_args) == (
        "tickets.process-inbox",
        PLUGIN,
        "interval",
        {"minutes": 10},
    )
    examples = [example for _, example in ctx.plugins.collect("suite_cli_examples", ctx=ctx)]
    assert all(example[0] == PLUGIN for example in examples)


def test_options_come_from_the_plugins_table(tmp_path):
    ctx = make_context(tmp_path, {"inbox_minutes": 2, "similar_k": 5})
    assert ctx.plugin_options(PLUGIN).similar_k == 5
    assert [job.trigger_args for job in ctx.jobs() if job.plugin == PLUGIN] == [{"minutes": 2}]


@pytest.mark.parametrize(
    ("options", "key"),
    [({"inbox_minutes": 0}, "inbox_minutes"), ({"similar_kk": 3}, "similar_kk"), ({"review_below": 2}, "review_below")],
)
def test_invalid_options_stop_start_up_naming_table_and_key(tmp_path, options, key):
    with pytest.raises(ConfigError, match=rf"\[plugins\.tickets\]: invalid setting '{key}'"):
        make_context(tmp_path, options)


def test_sample_data_is_balanced_and_inbox_is_unlabelled():
    history = load_history(SAMPLE_DIR / "tickets.csv")
    queues = {}
    for ticket in history:
        queues[ticket.queue] = queues.get(ticket.queue, 0) + 1
    assert queues == {"hardware": 16, "access": 16, "billing": 16, "network": 16, "software": 16}
    inbox = load_inbox(SAMPLE_DIR / "inbox.jsonl")
    assert len(inbox.tickets) == 10 and not inbox.skipped
    assert {t.id for t in inbox.tickets}.isdisjoint(t.id for t in history)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,text\nT-1,printer broken\n", "missing field 'queue'"),
        ("id,text,queue\nT-1,printer broken,hardware\nT-1,vpn down,network\n", "'T-1' appears more than once"),
        ("id,text,queue\nT-1,,hardware\n", "empty 'text'"),
        ("", "file is empty"),
    ],
)
def test_bad_history_files_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "tickets.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        load_history(path)
    assert "\n" not in str(caught.value)


def test_inbox_skips_bad_lines_and_repeated_ids(tmp_path):
    path = tmp_path / "inbox.jsonl"
    lines = ['{"id": "A", "text": "vpn down"}', "not json", '{"id": "B"}', "[1]", '{"id": "A", "text": "again"}', ""]
    lines.insert(4, json.dumps({"id": "x" * 201, "text": "long id"}))
    path.write_text("\n".join(lines))
    inbox = load_inbox(path)
    assert [(t.id, t.text) for t in inbox.tickets] == [("A", "vpn down")]
    where = [problem.split(": ", 1)[0] for problem in inbox.skipped]
    assert where == ["inbox.jsonl:2", "inbox.jsonl:3", "inbox.jsonl:4", "inbox.jsonl:5"]
    path.write_bytes(b'{"id": "A", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        load_inbox(path)
    with pytest.raises(DataError, match="inbox file not found"):
        load_inbox(tmp_path / "missing.jsonl")


def test_routing_before_training_asks_to_train(ctx):
    result = CliRunner().invoke(build_app(ctx), ["tickets", "route", "my screen is black"])
    assert isinstance(result.exception, NotFoundError)
    assert "run 'suite train tickets'" in str(result.exception)
    with TestClient(create_app(ctx)) as client:
        response = client.post("/api/tickets/route", json={"text": "my screen is black"})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert "suite train tickets" in response.json()["error"]["message"]


def test_failing_job_is_recorded_with_the_plugin_name(ctx):
    """Untrained, the job fails: the run is recorded as failed and attributed to the plugin."""
    with ctx.scheduler() as scheduler:
        run = scheduler.run_now("tickets.process-inbox")
    assert (run.job, run.plugin, run.status) == ("tickets.process-inbox", PLUGIN, "failed")
    assert "suite train tickets" in run.error
    failure = ctx.plugins.failures[-1]
    assert (failure.plugin, failure.hook) == (PLUGIN, "tickets.process-inbox")


def test_cli_process_inbox_reports_a_missing_inbox(ctx, tmp_path: Path):
    result = CliRunner().invoke(build_app(ctx), ["tickets", "process-inbox", "--inbox", str(tmp_path / "none.jsonl")])
    assert isinstance(result.exception, DataError)
    assert "inbox file not found" in str(result.exception)
