"""The chatbot's interfaces: `suite chatbot ...`, `suite chat` (in-process and piped), the HTTP routes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from plugins.chatbot.cli import run_chat
from plugins.chatbot.data import load_labeled_texts
from plugins.chatbot.engine import Chatbot
from suite.app import create_app
from suite.cli import build_app

pytestmark = pytest.mark.slow
runner = CliRunner()


def invoke(ctx, *args: str):
    return runner.invoke(build_app(ctx), list(args), catch_exceptions=False)


# -- CLI -----------------------------------------------------------------------------------
def test_ask_prints_the_answer_and_its_source(trained_ctx):
    result = invoke(trained_ctx, "chatbot", "ask", "I forgot my PIN")
    assert result.exit_code == 0, result.output
    assert "[template change_pin" in result.output and "feedback id" in result.output

    result = invoke(trained_ctx, "chatbot", "ask", "--json", "--conversation-id", "cli-1", "my visa card was stolen")
    answer = json.loads(result.output)
    assert answer["conversation_id"] == "cli-1" and answer["source"] in ("template", "clarify")
    assert set(answer) >= {"intent", "confidence", "citations", "handoff_reason", "exchange_id", "top2"}


def test_intents_feedback_and_export(trained_ctx, tmp_path):
    listed = invoke(trained_ctx, "chatbot", "intents")
    assert "transfer_money" in listed.output and "amount, date" in listed.output

    answer = json.loads(invoke(trained_ctx, "chatbot", "ask", "--json", "a shop took money twice").output)
    rated = invoke(
        trained_ctx, "chatbot", "feedback", str(answer["exchange_id"]), "down", "--intent", "dispute_transaction"
    )
    assert rated.exit_code == 0 and "corrected_intent=dispute_transaction" in rated.output

    output = tmp_path / "corrections.csv"
    exported = invoke(trained_ctx, "chatbot", "export-feedback", "--output", str(output))
    assert exported.exit_code == 0 and "labelled messages" in exported.output
    assert ("a shop took money twice", "dispute_transaction") in {(r.text, r.label) for r in load_labeled_texts(output)}


def test_cli_errors_are_one_line(trained_ctx, context_factory, capsys):
    from suite.cli import main
    from suite.errors import ModelError, NotFoundError

    missing = runner.invoke(build_app(trained_ctx), ["chatbot", "feedback", "999999999", "up"])
    assert isinstance(missing.exception, NotFoundError)
    untrained = runner.invoke(build_app(context_factory()), ["chatbot", "ask", "hello"])
    assert isinstance(untrained.exception, ModelError) and "suite chatbot train" in str(untrained.exception)
    with pytest.raises(SystemExit) as exit_info:  # the real entry point: one line, non-zero exit
        main(["chatbot", "ask", "x" * 2000])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: message too long")


def test_train_accepts_more_data_and_skips_indexing(context_factory, tmp_path):
    ctx = context_factory({"max_length": 16})
    data, extra = tmp_path / "data.csv", tmp_path / "extra.csv"
    data.write_text("text,label\nhi there,greet\nhello,greet\nhey,greet\nbye,leave\nsee you,leave\n", encoding="utf-8")
    extra.write_text("text,label\ngood morning,greet\nfarewell,leave\nciao for now,leave\n", encoding="utf-8")
    result = invoke(
        ctx, "chatbot", "train", "--data", str(data), "--extra", str(extra), "--max-steps", "2", "--no-index"
    )
    assert result.exit_code == 0, result.output
    version = ctx.registry.active("chatbot", "intent")
    assert version.card.labels == ["greet", "leave"]
    # Few examples per intent: calibrated on a held-out share, then refit on all 8.
    assert version.card.metrics["validation_examples"] >= 2 and version.card.train_examples == 8
    assert version.card.metrics["refit_examples"] == 8
    assert "chatbot-kb" not in ctx.search.list_indexes() or ctx.search.count("chatbot-kb") == 0
    assert not (ctx.plugin_dir("chatbot") / "knowledge.npz").exists()


def test_import_qa_command_writes_files_to_review(context_factory, tmp_path):
    ctx = context_factory()
    qa = tmp_path / "qa.jsonl"
    pairs = [
        ("how do I reset my PIN", "Change it at a cash machine."),
        ("I forgot my PIN number", "View it in the app."),
        ("change my pin please", "Change it at any cash machine."),
    ]
    qa.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in pairs), encoding="utf-8")
    result = invoke(ctx, "chatbot", "import-qa", str(qa), "--output-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "3 pairs -> 1 intents" in result.output and "suite chatbot train --data" in result.output
    assert len(load_labeled_texts(tmp_path / "out" / "intents.csv")) == 3


def test_the_plugin_declares_its_index_task_and_cleanup_job(context_factory):
    ctx = context_factory()
    (spec,) = [spec for spec in ctx.search_indexes() if spec.name == "chatbot-kb"]
    assert spec.vector_dim == 384
    assert "chatbot:intent" in [task.qualified_name for task in ctx.training_tasks()]
    (job,) = [job for job in ctx.jobs() if job.name == "chatbot.purge_sessions"]
    assert job.plugin == "chatbot" and job.trigger == "interval"
    assert job.func() == 0  # nothing expired in a new database


# -- suite chat ----------------------------------------------------------------------------
def test_chat_loop_answers_rates_and_quits(trained_ctx):
    out = io.StringIO()
    script = "I forgot my PIN\n/rate up\n/intent change_pin\n/new\n\n/quit\nnever read\n"
    bot = Chatbot(trained_ctx)
    run_chat(bot, io.StringIO(script), Console(file=out, width=200))
    text = out.getvalue()
    assert "[template change_pin" in text
    assert text.count("thanks, noted") == 2
    assert "new conversation" in text and "I didn't catch a question" in text
    assert "never read" not in text


def test_suite_chat_reads_piped_stdin_until_eof(trained_dir, tmp_path):
    config = tmp_path / "suite.toml"
    config.write_text(
        "[plugins.sentiment]\nenabled = false\n[plugins.recommender]\nenabled = false\n"
        "[plugins.chatbot]\nmax_length = 32\n[training]\nnum_threads = 1\n",
        encoding="utf-8",
    )
    env = {**os.environ, "SUITE_DATA_DIR": str(trained_dir), "SUITE_CONFIG": str(config)}
    completed = subprocess.run(
        [sys.executable, "-m", "suite.cli", "chat"],
        input="I want to talk to a human\nwhat is the capital of Peru\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("bot [") == 2
    assert "hand-off" in completed.stdout
    assert "you>" not in completed.stdout, "no prompt when stdin is not a terminal"


# -- HTTP ----------------------------------------------------------------------------------
@pytest.fixture
def client(trained_ctx):
    with TestClient(create_app(trained_ctx), raise_server_exceptions=False) as client:
        yield client


def test_http_ask_continues_a_conversation(client):
    first = client.post("/api/chatbot/ask", json={"message": "I want to send money to my sister"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["source"] in ("template", "clarify") and body["conversation_id"]
    second = client.post("/api/chatbot/ask", json={"message": "$90", "conversation_id": body["conversation_id"]})
    assert second.json()["conversation_id"] == body["conversation_id"]
    assert second.json()["exchange_id"] > body["exchange_id"]


def test_http_answers_carry_citations_and_handoff_reasons(client):
    body = client.post("/api/chatbot/ask", json={"message": "what is the capital of Peru"}).json()
    assert body["source"] == "out_of_scope" and body["out_of_scope_reason"]
    faq = client.post("/api/chatbot/ask", json={"message": "what are your branch opening hours?"}).json()
    for citation in faq["citations"]:  # a document id and title, never a path on the server
        assert set(citation) == {"id", "title", "doc", "kind", "url", "snippet", "score"}
        assert "/" not in citation["doc"] and "/" not in citation["id"]
    polite = client.post("/api/chatbot/ask", json={"message": "   "}).json()
    assert polite["source"] == "refusal"


def test_http_feedback_and_intents(client):
    asked = client.post("/api/chatbot/ask", json={"message": "I forgot my PIN"}).json()
    ok = client.post("/api/chatbot/feedback", json={"exchange_id": asked["exchange_id"], "rating": "up"})
    assert ok.status_code == 200 and ok.json() == {
        "exchange_id": asked["exchange_id"],
        "rating": "up",
        "corrected_intent": None,
    }
    assert client.post("/api/chatbot/feedback", json={"exchange_id": 10**9, "rating": "up"}).status_code == 404
    assert client.post("/api/chatbot/feedback", json={"exchange_id": 1, "rating": "meh"}).status_code == 422
    wrong = client.post("/api/chatbot/feedback", json={"exchange_id": asked["exchange_id"], "corrected_intent": "zz"})
    assert wrong.status_code == 422 and "unknown intent" in wrong.json()["error"]["message"]
    intents = client.get("/api/chatbot/intents").json()
    assert len(intents) == 12 and {"name", "title", "slots", "has_template", "handoff"} <= set(intents[0])


def test_http_bad_input_is_a_clear_error(client):
    too_long = client.post("/api/chatbot/ask", json={"message": "a" * 1500})
    assert too_long.status_code == 422 and "too long" in too_long.json()["error"]["message"]
    assert client.post("/api/chatbot/ask", json={"message": "b" * 6000}).status_code == 413
    assert client.post("/api/chatbot/ask", json={"message": "hi", "conversation_id": "bad id!"}).status_code == 422
    assert client.post("/api/chatbot/ask", json={}).status_code == 422
