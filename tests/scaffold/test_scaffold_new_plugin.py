"""`suite new-plugin NAME`: the package it writes installs, is discovered, and its own tests pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.cli import main

HOOKS = {
    "suite_cli_commands",
    "suite_cli_examples",
    "suite_config_model",
    "suite_http_routers",
    "suite_plugin_info",
    "suite_training_tasks",
}


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_generated_plugin_installs_is_listed_and_passes_its_own_tests(tmp_path: Path):
    created = run([sys.executable, "-m", "suite", "new-plugin", "demo_plugin", "--dir", "tmp"], tmp_path)
    assert created.returncode == 0, created.stderr
    package = tmp_path / "tmp" / "suite-demo-plugin"
    assert sorted(snapshot(package)) == [
        "README.md",
        "pyproject.toml",
        "suite_demo_plugin/__init__.py",
        "suite_demo_plugin/data/sample.csv",
        "suite_demo_plugin/plugin.py",
        "tests/test_plugin.py",
    ]
    assert 'demo_plugin = "suite_demo_plugin.plugin"' in (package / "pyproject.toml").read_text()
    assert list((tmp_path / "tmp").iterdir()) == [package]  # no staging folder left behind

    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    installed = run([*pip, "--no-cache-dir", "--target", str(site), str(package)], tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert (site / "suite_demo_plugin" / "data" / "sample.csv").is_file()  # package data is installed

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    listed = run([sys.executable, "-m", "suite", "plugins", "--json"], tmp_path, env)
    assert listed.returncode == 0, listed.stderr
    info = {plugin["name"]: plugin for plugin in json.loads(listed.stdout)}["demo_plugin"]
    assert (info["status"], info["version"], info["error"]) == ("enabled", "0.1.0", None)
    assert set(info["hooks"]) == HOOKS

    # The generated tests fine-tune for a few steps; one torch thread is faster on a busy machine.
    env |= {"SUITE_TRAINING__NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    tested = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], package, env, timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert "3 passed" in tested.stdout


@pytest.mark.parametrize("name", ["Demo", "1demo", "d", "demo-plugin", "demo plugin", "x" * 42, "suite_../x"])
def test_bad_name_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str):
    with pytest.raises(SystemExit) as exited:
        main(["new-plugin", name, "--dir", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: plugin name") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_dir_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "taken").write_text("a file\n")
    with pytest.raises(SystemExit) as exited:
        main(["new-plugin", "demo_plugin", "--dir", str(tmp_path / "taken")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: cannot create")


def test_existing_folder_exits_2_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    existing = tmp_path / "suite-demo-plugin"
    (existing / "suite_demo_plugin").mkdir(parents=True)
    (existing / "pyproject.toml").write_text("# mine\n")
    (existing / "suite_demo_plugin" / "plugin.py").write_text("# my code\n")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["new-plugin", "demo_plugin", "--dir", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite-demo-plugin"]
