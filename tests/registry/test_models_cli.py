"""``suite models`` end to end: train a classifier and a bi-encoder from files, list, show,
activate, verify, and load the registered models again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.cli import main

pytestmark = pytest.mark.slow

INTENTS = {
    "greeting": ["hello there", "hi, how are you", "good morning", "hey friend", "hello!", "greetings"],
    "weather": ["will it rain today", "what's the forecast", "is it sunny", "how cold is it", "is it windy", "snow?"],
}
PAIRS = [
    ("how do I reset my password", "Open settings, choose security, then reset password."),
    ("where is my parcel", "Track deliveries from the orders page."),
    ("can I pay by card", "We accept visa and mastercard."),
    ("how do I close my account", "Write to support to delete your account."),
]


def suite(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["models", *args])
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    intents = tmp_path / "intents.csv"
    intents.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for label, ts in INTENTS.items() for t in ts))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": q, "positive": p}) + "\n" for q, p in PAIRS))
    return {"intents": intents, "pairs": pairs}


def test_train_list_show_activate_verify_and_reload(capsys, files, monkeypatch):
    monkeypatch.setenv("SUITE_TRAINING__NUM_THREADS", "1")
    quick = ["--batch-size", "4", "--no-progress"]
    code, out, err = suite(
        capsys,
        "train",
        "classification",
        "--data",
        str(files["intents"]),
        "--plugin",
        "demo",
        "--task",
        "intent",
        "--max-steps",
        "6",
        "--validation-fraction",
        "0.25",
        *quick,
    )
    assert code == 0, err
    assert "registered demo/intent@v1 (active)" in out and "on validation" in out
    code, out, err = suite(
        capsys,
        "train",
        "biencoder",
        "--data",
        str(files["pairs"]),
        "--plugin",
        "demo",
        "--task",
        "faq",
        "--max-steps",
        "2",
        "--validation-fraction",
        "0",
        *quick,
    )
    assert code == 0, err
    assert "registered demo/faq@v1 (active)" in out and "mrr=" in out
    code, out, err = suite(
        capsys,
        "train",
        "classification",
        "--data",
        str(files["intents"]),
        "--plugin",
        "demo",
        "--task",
        "intent",
        "--max-steps",
        "1",
        "--no-activate",
        *quick,
    )
    assert code == 0 and "registered demo/intent@v2  " in out

    code, out, _ = suite(capsys, "list", "--json")
    listed = {row["ref"]: row for row in json.loads(out)}
    assert list(listed) == ["demo/faq@v1", "demo/intent@v1", "demo/intent@v2"]
    assert [listed[ref]["active"] for ref in listed] == [True, True, False]
    assert listed["demo/intent@v1"]["labels"] == ["greeting", "weather"]
    assert listed["demo/faq@v1"]["kind"] == "biencoder" and listed["demo/faq@v1"]["train_examples"] == 4
    code, out, _ = suite(capsys, "list", "--task", "faq")
    assert code == 0 and "demo/faq@v1" in out and "intent" not in out

    code, out, _ = suite(capsys, "activate", "demo/intent@2")
    assert code == 0 and "active: demo/intent@v2" in out
    code, out, _ = suite(capsys, "show", "demo/intent", "--json")
    shown = json.loads(out)
    assert shown["ref"] == "demo/intent@v2" and shown["hyperparameters"]["max_steps"] == 1
    code, out, _ = suite(capsys, "show", "demo/faq")
    assert code == 0 and "demo/faq v1" in out and "mrr" in out
    code, out, _ = suite(capsys, "verify")
    assert code == 0 and out.count("ok") == 3

    # The registered folders load with the inference classes, and nothing is left to resume.
    from services.embeddings import Embedder
    from services.training import TextClassifier

    data_dir = Path(shown["path"]).parents[2]
    classifier = TextClassifier.from_pretrained(Path(listed["demo/intent@v1"]["path"]))
    assert classifier.labels == ["greeting", "weather"] and len(classifier.predict(["hi"])) == 1
    assert Embedder(listed["demo/faq@v1"]["path"], cache_dir=None).encode(["where is my parcel"]).shape == (1, 384)
    assert not any((data_dir.parent / "checkpoints").glob("*/*/step-*"))
    assert not list((data_dir.parent / "tmp").iterdir())

    (Path(listed["demo/intent@v1"]["path"]) / "model.safetensors").write_bytes(b"damaged")
    code, out, err = suite(capsys, "verify")
    assert code == 1 and "FAILED demo/intent@v1" in out and "1 of 3 model versions failed" in err


def test_errors_are_one_line(capsys, files, tmp_path):
    code, _, err = suite(capsys, "show", "demo/nothing")
    assert code == 2 and "error: no model registered for demo/nothing" in err
    code, _, err = suite(capsys, "activate", "demo/intent")
    assert code == 2 and "give the version" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nhi,a\n")
    code, _, err = suite(capsys, "train", "classification", "--data", str(bad), "--plugin", "demo", "--task", "x")
    assert code == 2 and "missing field 'label'" in err and len(err.strip().splitlines()) == 1
    code, _, err = suite(
        capsys, "train", "classification", "--data", str(files["pairs"]), "--plugin", "demo", "--task", "x"
    )
    assert code == 2 and "missing field 'text'" in err
