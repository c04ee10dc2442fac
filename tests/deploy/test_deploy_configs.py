"""The example configs validate, and say what they claim; the operations guide names real commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from suite.cli import build_app
from suite.config import Settings, load_settings
from suite.context import SuiteContext
from suite.errors import ConfigError
from suite.http.auth import ApiKeyAuth, auth_required

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(autouse=True)
def no_data_dir_override(monkeypatch):
    monkeypatch.delenv("SUITE_DATA_DIR", raising=False)  # let each file's own data_dir show


def test_laptop_config_is_exactly_the_defaults():
    assert load_settings(DEPLOY / "suite.laptop.toml").model_dump() == Settings().model_dump()


def test_compose_config_validates_and_never_runs_open():
    settings = load_settings(DEPLOY / "suite.compose.toml")
    assert str(settings.data_dir) == "/data"
    assert settings.search.backend == "elasticsearch"
    assert auth_required(settings.http)
    assert not settings.http.api_keys  # secrets come from the environment, not the file
    with pytest.raises(ConfigError, match="http.api_keys is empty"):
        ApiKeyAuth(settings.http)


def documented_commands() -> list[list[str]]:
    text = (DEPLOY / "OPERATIONS.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    commands = []
    for line in "\n".join(blocks).splitlines():
        for match in re.finditer(r"(?:^|\s|`)suite ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", line):
            commands.append(match[1].split())
    return commands


def test_operations_guide_names_existing_commands(tmp_path):
    ctx = SuiteContext.create(None, discover=False, data_dir=tmp_path)
    root = typer.main.get_command(build_app(ctx))
    commands = documented_commands()
    assert ["serve"] in [c[:1] for c in commands] and ["scheduler", "run"] in commands
    missing = []
    for words in commands:
        command = root
        for word in words:
            if not hasattr(command, "commands"):
                break
            if word not in command.commands:
                missing.append(" ".join(words))
                break
            command = command.commands[word]
    assert not missing, f"OPERATIONS.md names commands that do not exist: {missing}"
