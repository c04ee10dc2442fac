"""The versioned model registry: numbering, activation, atomic registration, corruption checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from services.registry import ModelCard, ModelRegistry, now_iso, parse_ref
from suite.errors import DataError, ModelError, NotFoundError


def card(plugin: str = "chatbot", task: str = "intent", **changes) -> ModelCard:
    values = dict(
        plugin=plugin,
        task=task,
        kind="classification",
        backbone="default",
        data_fingerprint="ab" * 32,
        hyperparameters={"learning_rate": 1e-4, "epochs": 4.0},
        metrics={"accuracy": 0.9, "macro_f1": 0.85, "per_label": {}},
        created_at=now_iso(),
        train_examples=24,
        wall_seconds=1.5,
        labels=["greet", "leave"],
    )
    values.update(changes)
    return ModelCard(**values)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def test_versions_are_numbered_per_plugin_and_task_and_the_newest_is_active(registry, model_dir):
    first = registry.register(model_dir, card())
    second = registry.register(model_dir, card())
    other = registry.register(model_dir, card(task="faq"))
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.path == registry.root / "chatbot" / "intent" / "v0001"
    assert second.ref == "chatbot/intent@v2"
    assert (registry.root / "chatbot" / "intent" / "ACTIVE").read_text().strip() == "v0002"
    assert registry.active("chatbot", "intent").version == 2
    assert [v.ref for v in registry.list()] == ["chatbot/faq@v1", "chatbot/intent@v1", "chatbot/intent@v2"]
    assert [v.active for v in registry.list(task="intent")] == [False, True]
    assert registry.list(plugin="sentiment") == []
    assert model_dir.is_dir()  # copied, not moved


def test_card_and_readme_are_written_and_read_back(registry, model_dir):
    version = registry.register(model_dir, card(notes="first try"))
    assert version.card == card(notes="first try", created_at=version.card.created_at)
    saved = json.loads((version.path / "model_card.json").read_text())
    assert saved["metrics"]["macro_f1"] == 0.85
    readme = (version.path / "README.md").read_text()
    assert "# chatbot/intent v1" in readme and "| macro_f1 | 0.8500 |" in readme and "first try" in readme
    assert version.card.key_metrics() == {"accuracy": 0.9, "macro_f1": 0.85}


def test_activate_get_and_resolve(registry, model_dir):
    registry.register(model_dir, card())
    registry.register(model_dir, card(), activate=False)
    assert registry.get("chatbot", "intent").version == 1  # the inactive v2 did not take over
    registry.activate("chatbot", "intent", 2)
    assert registry.get("chatbot", "intent").version == 2
    assert registry.resolve("chatbot/intent@1").version == 1
    assert registry.resolve("chatbot/intent@v2").active
    assert registry.resolve("chatbot/intent").version == 2
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.get("chatbot", "intent", 7)
    with pytest.raises(NotFoundError, match="no model registered"):
        registry.get("chatbot", "nothing")
    with pytest.raises(NotFoundError):
        registry.get("../etc", "intent")


def test_no_active_version_until_one_is_activated(registry, model_dir):
    registry.register(model_dir, card(), activate=False)
    assert registry.active("chatbot", "intent") is None
    with pytest.raises(NotFoundError, match="no active version"):
        registry.get("chatbot", "intent")


def test_parse_ref():
    assert parse_ref("chatbot/intent@v3") == ("chatbot", "intent", 3)
    assert parse_ref("chatbot/intent@12") == ("chatbot", "intent", 12)
    assert parse_ref("chatbot/intent") == ("chatbot", "intent", None)
    for bad in ("chatbot", "chatbot/intent@x", "a/b/c"):
        with pytest.raises(NotFoundError):
            parse_ref(bad)


def test_move_takes_the_folder_and_drops_pickles(registry, model_dir):
    (model_dir / "training_args.bin").write_bytes(b"pickle")
    version = registry.register(model_dir, card(), move=True)
    assert not model_dir.exists()
    assert not (version.path / "training_args.bin").exists()
    registry.verify(version)


def test_a_bad_folder_is_refused_and_leaves_nothing_behind(registry, model_dir):
    (model_dir / "model.safetensors").unlink()
    (model_dir / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="no model.safetensors"):
        registry.register(model_dir, card(), move=True)
    assert model_dir.is_dir() and (model_dir / "pytorch_model.bin").exists()  # given back untouched
    assert registry.list() == [] and not (registry.root / "chatbot" / "intent").exists()


def test_labels_must_match_the_model_config(registry, model_dir):
    with pytest.raises(ModelError, match="do not match"):
        registry.register(model_dir, card(labels=["leave", "greet"]), move=True)
    # refused after the copy into a temporary folder: that folder is gone, the source is back
    assert [p.name for p in (registry.root / "chatbot" / "intent").iterdir()] == [".lock"]
    assert (model_dir / "model.safetensors").is_file() and registry.list() == []


def test_invalid_names_are_refused(registry, model_dir):
    with pytest.raises(DataError, match="invalid plugin name"):
        registry.register(model_dir, card(plugin="../evil"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:200]), "corrupt"),
        (lambda p: (p / "model.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}"), "safetensors"),
        (lambda p: _flip_last_byte(p / "model.safetensors"), "checksum mismatch"),
        (lambda p: (p / "config.json").write_text("{not json"), "config.json"),
        (lambda p: (p / "tokenizer_config.json").unlink(), "no tokenizer"),
        (lambda p: [(p / n).unlink() for n in ("tokenizer.json", "vocab.txt")], "vocabulary"),
        (lambda p: (p / "extra.pt").write_bytes(b"x"), "pickle"),
        (lambda p: shutil.rmtree(p), "not found"),
    ],
)
def test_verify_catches_corruption(registry, model_dir, damage, message):
    version = registry.register(model_dir, card())
    registry.verify(version)
    damage(version.path)
    with pytest.raises(ModelError, match=message):
        registry.verify(version)


def test_activate_refuses_a_corrupt_version(registry, model_dir):
    registry.register(model_dir, card())
    broken = registry.register(model_dir, card(), activate=False)
    _flip_last_byte(broken.path / "model.safetensors")
    with pytest.raises(ModelError):
        registry.activate("chatbot", "intent", 2)
    assert registry.active("chatbot", "intent").version == 1


def test_an_unreadable_card_is_skipped_by_list(registry, model_dir):
    registry.register(model_dir, card())
    broken = registry.register(model_dir, card())
    (broken.path / "model_card.json").write_text("[]")
    assert [v.version for v in registry.list()] == [1]
    with pytest.raises(ModelError, match="not a JSON object"):
        registry.get("chatbot", "intent", 2)


def test_register_result_builds_the_card(registry, model_dir):
    from services.training import TrainResult

    result = TrainResult(
        model_dir=model_dir,
        metrics={"accuracy": 1.0, "macro_f1": 1.0},
        params={"learning_rate": 1e-4},
        train_examples=24,
        wall_seconds=3.2,
        data_fingerprint="cd" * 32,
        kind="classification",
        backbone="/models/minilm",
        labels=["greet", "leave"],
    )
    version = registry.register_result(result, "demo", "intent")
    assert version.card.backbone == "/models/minilm" and version.card.labels == ["greet", "leave"]
    assert version.card.hyperparameters == {"learning_rate": 1e-4} and version.card.train_examples == 24
    assert not model_dir.exists()  # the training output was moved in


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
