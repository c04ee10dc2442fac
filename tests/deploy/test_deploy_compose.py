"""deploy/compose.yaml and the Dockerfile: they parse, pin real images, and set only real settings."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any, get_args

import elasticsearch
import pytest
import yaml
from pydantic import BaseModel

from suite.config import CONFIG_ENV, Settings, load_settings
from suite.http.auth import ApiKeyAuth, auth_required

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUITE_SERVICES = ("api", "scheduler")
# Official images this stack may use, with the tag forms that exist for them (explicit versions only).
OFFICIAL_IMAGES = {
    "docker.elastic.co/elasticsearch/elasticsearch": re.compile(r"^\d+\.\d+\.\d+$"),
    "postgres": re.compile(r"^\d{2}(\.\d+)?$"),
    "redis": re.compile(r"^\d+\.\d+(\.\d+)?$"),
}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with (DEPLOY / "compose.yaml").open() as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = shlex.split(value)[0] if value.strip() else ""
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if variables.get(name):
            return variables[name]
        if op and op.endswith("-"):
            return arg
        raise AssertionError(f"${{{name}}} is neither in .env.example nor has a default")

    return VARIABLE.sub(substitute, value)


def settings_env_names(model: type[BaseModel] = Settings, prefix: str = "SUITE_") -> set[str]:
    """Every environment variable the settings read: SUITE_<FIELD>, nested with ``__``."""
    names = set()
    for name, field in model.model_fields.items():
        env_name = f"{prefix}{name.upper()}"
        names.add(env_name)
        for candidate in (field.annotation, *get_args(field.annotation)):  # EmailSinkConfig | None
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                names |= settings_env_names(candidate, f"{env_name}__")
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def test_compose_file_has_the_five_services(compose):
    assert set(compose["services"]) == {"api", "scheduler", "elasticsearch", "postgres", "redis"}


def test_images_are_official_and_pinned(compose):
    for name, service in compose["services"].items():
        if "build" in service:
            continue
        image, _, tag = service["image"].rpartition(":")
        assert image in OFFICIAL_IMAGES, f"{name}: unexpected image {service['image']}"
        assert OFFICIAL_IMAGES[image].match(tag), f"{name}: tag {tag!r} is not an explicit version"


def test_elasticsearch_server_matches_the_client_major_version(compose):
    # A 9.x client refuses an 8.x server (and the reverse): keep them on the same major.
    tag = compose["services"]["elasticsearch"]["image"].rpartition(":")[2]
    assert int(tag.split(".")[0]) == elasticsearch.__version__[0]


def test_suite_services_build_the_suite_image(compose):
    for name in SUITE_SERVICES:
        build = compose["services"][name]["build"]
        dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
        assert dockerfile == DEPLOY / "Dockerfile"
    assert compose["services"]["api"]["command"] == ["serve"]
    assert compose["services"]["scheduler"]["command"] == ["scheduler", "run"]


def test_only_existing_settings_are_set(compose):
    known = settings_env_names() | {CONFIG_ENV}
    assert {
        "SUITE_HTTP__API_KEYS",
        "SUITE_SEARCH__ELASTICSEARCH_URL",
        "SUITE_SCHEDULER__JOBSTORE_URL",
    } <= known
    for name, service in compose["services"].items():
        for variable in environment(service):
            if variable.startswith("SUITE_"):
                assert variable in known, f"{name}: {variable} is not a suite setting"


@pytest.mark.parametrize("service", SUITE_SERVICES)
def test_the_environment_and_config_file_make_valid_settings(compose, env_example, service, monkeypatch):
    env = {key: interpolate(value, env_example) for key, value in environment(compose["services"][service]).items()}
    assert env[CONFIG_ENV] == "/etc/suite/suite.toml"
    mounted = [v for v in compose["services"][service]["volumes"] if v.endswith(":/etc/suite/suite.toml:ro")]
    assert mounted == ["./suite.compose.toml:/etc/suite/suite.toml:ro"]
    env[CONFIG_ENV] = str(DEPLOY / "suite.compose.toml")  # the file mounted there
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert str(settings.data_dir) == "/data"
    assert settings.search.backend == "elasticsearch"
    assert settings.search.elasticsearch_url == "http://elasticsearch:9200"
    assert settings.effective_database_url.startswith("postgresql+psycopg://suite:")
    assert settings.effective_jobstore_url == settings.effective_database_url
    if service == "api":
        assert settings.http.host == "0.0.0.0" and auth_required(settings.http)
        ApiKeyAuth(settings.http)  # keys are configured, so the API starts


def test_env_example_api_keys_are_a_json_list_of_long_keys(env_example):
    keys = json.loads(env_example["SUITE_HTTP__API_KEYS"])
    assert keys and all(isinstance(key, str) and len(key) >= 16 for key in keys)


def test_healthchecks_and_start_order(compose):
    services = compose["services"]
    for name in ("api", "elasticsearch", "postgres"):
        assert services[name]["healthcheck"]["test"], name
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    for name in SUITE_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["elasticsearch"]["condition"] == "service_healthy"


def test_databases_keep_their_data_in_volumes_and_stay_private(compose):
    services = compose["services"]
    es, pg = services["elasticsearch"], services["postgres"]
    assert any(v.endswith(":/usr/share/elasticsearch/data") for v in es["volumes"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    for volume in [v.split(":")[0] for v in es["volumes"] + pg["volumes"] + services["api"]["volumes"]]:
        assert volume.startswith("./") or volume in compose["volumes"], volume
    assert "ports" not in es and "ports" not in pg
    assert es["networks"] == ["backend"] and pg["networks"] == ["backend"]
    assert compose["networks"]["backend"]["internal"] is True


def test_the_api_workers_share_their_rate_limit_through_a_private_redis(compose, env_example, monkeypatch):
    services = compose["services"]
    redis = services["redis"]
    assert "ports" not in redis and redis["networks"] == ["backend"]
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    monkeypatch.setenv(CONFIG_ENV, str(DEPLOY / "suite.compose.toml"))
    settings = load_settings()
    assert settings.http.workers > 1 and settings.http.rate_limit_storage == "redis://redis:6379/0"
    assert re.search(r"pip install \"\.\[[a-z,]*redis", (DEPLOY / "Dockerfile").read_text())  # the client


def test_elasticsearch_is_a_single_node_with_a_fixed_heap(compose):
    env = environment(compose["services"]["elasticsearch"])
    assert env["discovery.type"] == "single-node"
    heap = re.fullmatch(r"-Xms(\S+) -Xmx(\S+)", env["ES_JAVA_OPTS"])
    assert heap and heap[1] == heap[2]
    assert env["xpack.security.enabled"] in ("true", "false")  # explicit, never the default


def test_dockerfile_installs_cpu_torch_and_copies_what_exists():
    text = (DEPLOY / "Dockerfile").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim-\w+$", text, re.MULTILINE)
    root = DEPLOY.parent
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (root / source).exists(), f"COPY {source}: not in the repository"
    assert 'ENTRYPOINT ["suite"]' in text
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "**/.venv" in ignored and "**/.git" in ignored
