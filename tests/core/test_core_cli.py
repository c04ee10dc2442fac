"""The CLI as a user meets it: a real `suite` process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def suite(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "suite", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_plugins_lists_the_three_built_ins() -> None:
    result = suite("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert {"chatbot", "sentiment", "recommender"} <= set(plugins)
    assert all(plugins[name]["status"] == "enabled" for name in ("chatbot", "sentiment", "recommender"))
    assert all("suite_plugin_info" in plugins[name]["hooks"] for name in plugins)


def test_disable_a_plugin_from_the_environment() -> None:
    result = suite("plugins", "--json", env={"SUITE_PLUGINS__RECOMMENDER__ENABLED": "false"})
    statuses = {p["name"]: p["status"] for p in json.loads(result.stdout)}
    assert statuses["recommender"] == "disabled"


def test_config_show_prints_the_effective_config(isolated_suite_env: Path) -> None:
    result = suite("config", "show", "--json", env={"SUITE_TRAINING__EPOCHS": "2.5"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["training"]["epochs"] == 2.5
    assert shown["data_dir"] == str(isolated_suite_env)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("x = [", "not valid TOML"),
        ("[plugins.nosuch]\nenabled = true\n", "unknown plugin 'nosuch'"),
        ("[http]\nport = 99999\n", "invalid setting 'http.port'"),
    ],
)
def test_bad_config_gives_one_line_and_exit_2(tmp_path: Path, config: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = suite("--config", str(path), "plugins")
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "suite-data").exists()  # nothing written


def test_missing_config_file(tmp_path: Path) -> None:
    result = suite("--config", str(tmp_path / "missing.toml"), "plugins")
    assert result.returncode == 2
    assert "config file not found" in result.stderr


def test_unknown_training_task_is_a_one_line_error() -> None:
    result = suite("train", "nosuch:task")
    assert result.returncode == 2
    assert "unknown training task 'nosuch:task'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_built_in_command_group_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from suite import cli

    groups = {**cli.SERVICE_COMMAND_GROUPS, "ghost": "suite.commands.ghost"}
    monkeypatch.setattr(cli, "SERVICE_COMMAND_GROUPS", groups)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plugins"])
    assert exit_info.value.code == 1
    assert "No module named 'suite.commands.ghost'" in capsys.readouterr().err
