from pathlib import Path

import pytest

from suite.config import load_settings
from suite.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_server(isolated_suite_env: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == isolated_suite_env
    assert settings.search.backend == "embedded"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_jobstore_url.endswith("scheduler.db")
    assert settings.backbone == "default"


def test_file_then_environment_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "suite.toml", "[training]\nepochs = 7\nbatch_size = 8\n[search]\nrrf_k = 10\n")
    monkeypatch.setenv("SUITE_TRAINING__BATCH_SIZE", "16")
    settings = load_settings(config)
    assert settings.training.epochs == 7  # from the file
    assert settings.training.batch_size == 16  # environment beats the file
    assert settings.search.rrf_k == 10


def test_local_suite_toml_is_found_and_relative_data_dir_is_beside_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SUITE_DATA_DIR")
    write(tmp_path / "suite.toml", 'data_dir = "state"\n')
    assert load_settings().data_dir == (tmp_path / "state").resolve()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = [", "not valid TOML"),
        ('[search]\nbackend = "solr"\n', "invalid setting 'search.backend'"),
        ("[training]\nepochs = -1\n", "invalid setting 'training.epochs'"),
        ("[trainnig]\nepochs = 1\n", "invalid setting 'trainnig'"),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path / "bad.toml", text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_explicit_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_are_redacted(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "s.toml", '[http]\napi_keys = ["s3cret-key"]\n'))
    assert "s3cret-key" not in str(settings.redacted())
    assert settings.http.api_keys[0].get_secret_value() == "s3cret-key"
