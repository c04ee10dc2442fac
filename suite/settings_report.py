"""``suite config show --all``: every setting with its value, its default and where the value came from.

Sources, highest precedence first, as :func:`suite.config.load_settings` applies them: ``env``
(a ``SUITE_*`` variable), ``file`` (the TOML file in force), ``default``. Plugin options
(``[plugins.<name>]``) are listed from each plugin's own options model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from suite.config import Settings, find_config_file, read_toml

if TYPE_CHECKING:
    from suite.context import SuiteContext

ENV_PREFIX = "SUITE_"
ENV_DELIMITER = "__"


@dataclass
class SettingRow:
    """One leaf setting: ``key`` is dotted (``search.backend``, ``plugins.chatbot.epochs``)."""

    key: str
    value: Any
    default: Any
    source: str  # "env", "file" or "default"
    description: str = ""


def describe_settings(ctx: SuiteContext, config_file: str | None = None) -> list[SettingRow]:
    """Every setting of the suite and of each enabled plugin's options, in declaration order."""
    path = find_config_file(config_file)
    file_values = read_toml(path) if path else {}
    env = {name.upper(): value for name, value in os.environ.items() if name.upper().startswith(ENV_PREFIX)}
    rows: list[SettingRow] = []
    for name, field in Settings.model_fields.items():
        if name == "plugins":
            continue
        _walk(rows, (name,), field, getattr(ctx.settings, name), file_values, env)
    for plugin in ctx.plugins.names:
        settings = ctx.settings.plugin(plugin)
        _leaf(rows, ("plugins", plugin, "enabled"), True, settings.enabled, "", file_values, env)
        _leaf(rows, ("plugins", plugin, "backbone"), None, settings.backbone, "", file_values, env)
        try:
            options = ctx.plugin_options(plugin)
        except Exception:  # a plugin without options: only enabled/backbone apply
            continue
        for name, field in type(options).model_fields.items():
            _walk(rows, ("plugins", plugin, name), field, getattr(options, name), file_values, env)
    return rows


def _walk(rows: list[SettingRow], key: tuple[str, ...], field: Any, value: Any, file_values: dict, env: dict) -> None:
    if isinstance(value, BaseModel):  # a section: list its leaves
        for name, sub in type(value).model_fields.items():
            _walk(rows, (*key, name), sub, getattr(value, name), file_values, env)
        return
    _leaf(rows, key, _default_of(field), value, field.description or "", file_values, env)


def _leaf(
    rows: list[SettingRow], key: tuple[str, ...], default: Any, value: Any, description: str, file_values, env
) -> None:
    rows.append(SettingRow(".".join(key), _plain(value), _plain(default), _source(key, file_values, env), description))


def _default_of(field: Any) -> Any:
    if field.default_factory is not None:
        try:
            return field.default_factory()
        except TypeError:  # a factory that needs the validated data
            return None
    return None if field.default is PydanticUndefined else field.default


def _source(key: tuple[str, ...], file_values: dict, env: dict) -> str:
    # Any prefix of the key may be set as a whole (SUITE_SEARCH='{"backend": ...}').
    for depth in range(len(key), 0, -1):
        if ENV_PREFIX + ENV_DELIMITER.join(key[:depth]).upper() in env:
            return "env"
    node: Any = file_values
    for part in key:
        if not isinstance(node, dict) or part not in node:
            return "default"
        node = node[part]
    return "file"


def _plain(value: Any) -> Any:
    """JSON-ready: secrets hidden (pydantic shows them as '**********'), paths and durations as strings."""
    return to_jsonable_python(value, fallback=str)


def format_settings(rows: list[SettingRow]) -> str:
    """TOML-like lines, ``key = value  # source`` plus the default where the value differs."""
    lines = []
    for row in rows:
        note = row.source if row.value == row.default else f"{row.source}; default {_show(row.default)}"
        lines.append(f"{row.key} = {_show(row.value)}  # {note}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value, ensure_ascii=False)
