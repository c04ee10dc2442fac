"""Answer templates per intent, with slots filled from entities.

The templates file is JSON::

    {
      "entity_slots": {"MONEY": "amount", "DATE": "date", "CARD_TYPE": "card_type"},
      "slot_prompts": {"amount": "How much is it for?"},
      "intents": {
        "transfer_money": {
          "title": "send a transfer",                      # used in clarifying questions
          "template": "To send {amount} on {date}, ...",   # {slot} placeholders
          "prompts": {"date": "When should it go out?"},   # asked when a slot is missing
          "defaults": {"date": "today"},                   # optional slots: never asked
          "handoff": false                                 # true: answer, then pass to a human
        }
      }
    }

``entity_slots`` maps entity labels (spaCy's and the plugin's patterns') to slot names;
its order is the precedence when two labels fill the same slot.
"""

from __future__ import annotations

import json
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins.chatbot.data import read_text_file, write_atomic
from suite.errors import DataError

DEFAULT_ENTITY_SLOTS = {
    "MONEY": "amount",
    "DATE": "date",
    "CARD_TYPE": "card_type",
    "ACCOUNT_TYPE": "account_type",
}


@dataclass(frozen=True)
class IntentTemplate:
    intent: str
    title: str
    template: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    handoff: bool = False

    @property
    def slots(self) -> list[str]:
        """The placeholders of the template, in order of first appearance."""
        return placeholders(self.template) if self.template else []

    def missing(self, filled: dict[str, str]) -> list[str]:
        """Slots still needed: neither filled nor defaulted."""
        return [slot for slot in self.slots if not filled.get(slot) and slot not in self.defaults]

    def render(self, filled: dict[str, str]) -> str:
        values = {**self.defaults, **{k: v for k, v in filled.items() if v}}
        return (self.template or "").format_map(values)


@dataclass(frozen=True)
class TemplateBook:
    intents: dict[str, IntentTemplate] = field(default_factory=dict)
    entity_slots: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ENTITY_SLOTS))
    slot_prompts: dict[str, str] = field(default_factory=dict)

    def get(self, intent: str) -> IntentTemplate | None:
        return self.intents.get(intent)

    def title(self, intent: str) -> str:
        template = self.intents.get(intent)
        return template.title if template else intent.replace("_", " ")

    def prompt(self, intent: str, slot: str) -> str:
        template = self.intents.get(intent)
        if template and slot in template.prompts:
            return template.prompts[slot]
        return self.slot_prompts.get(slot) or f"Could you tell me the {slot.replace('_', ' ')}?"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "entity_slots": self.entity_slots,
            "slot_prompts": self.slot_prompts,
            "intents": {
                name: {
                    "title": t.title,
                    **({"template": t.template} if t.template else {}),
                    **({"prompts": t.prompts} if t.prompts else {}),
                    **({"defaults": t.defaults} if t.defaults else {}),
                    **({"handoff": True} if t.handoff else {}),
                }
                for name, t in self.intents.items()
            },
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def save(self, path: Path) -> None:
        write_atomic(path, self.to_json())


def placeholders(template: str) -> list[str]:
    """Slot names in a template; only plain ``{name}`` fields are allowed."""
    names: list[str] = []
    try:
        fields = [name for _, name, spec, conversion in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise DataError(f"template {template[:40]!r}...: {exc}") from None
    for name in fields:
        if not name.isidentifier():
            raise DataError(f"template {template[:40]!r}...: slot '{{{name}}}' must be a plain name like {{amount}}")
        if name not in names:
            names.append(name)
    return names


def parse_templates(data: Any, source: str = "templates") -> TemplateBook:
    if not isinstance(data, dict) or not isinstance(data.get("intents", {}), dict):
        raise DataError(f"{source}: expected an object with an 'intents' object")
    entity_slots = data.get("entity_slots", DEFAULT_ENTITY_SLOTS)
    slot_prompts = data.get("slot_prompts", {})
    for key, value in (("entity_slots", entity_slots), ("slot_prompts", slot_prompts)):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise DataError(f"{source}: '{key}' must map names to strings")
    intents = {}
    for name, spec in data.get("intents", {}).items():
        if not isinstance(spec, dict):
            raise DataError(f"{source}: intent '{name}' must be an object")
        unknown = set(spec) - {"title", "template", "prompts", "defaults", "handoff"}
        if unknown:
            raise DataError(f"{source}: intent '{name}' has unknown key(s) {', '.join(sorted(unknown))}")
        template = spec.get("template")
        if template is not None and not isinstance(template, str):
            raise DataError(f"{source}: intent '{name}': 'template' must be a string")
        if template:
            placeholders(template)  # validates
        for key in ("prompts", "defaults"):
            if not isinstance(spec.get(key, {}), dict):
                raise DataError(f"{source}: intent '{name}': '{key}' must be an object")
        intents[name] = IntentTemplate(
            intent=name,
            title=str(spec.get("title") or name.replace("_", " ")),
            template=template or None,
            prompts={str(k): str(v) for k, v in spec.get("prompts", {}).items()},
            defaults={str(k): str(v) for k, v in spec.get("defaults", {}).items()},
            handoff=bool(spec.get("handoff", False)),
        )
    return TemplateBook(intents=intents, entity_slots=dict(entity_slots), slot_prompts=dict(slot_prompts))


_cache: dict[Path, tuple[float, TemplateBook]] = {}
_cache_lock = threading.Lock()


def load_templates(path: Path) -> TemplateBook:
    """The templates at ``path``, re-read when the file changes (support staff edit it live)."""
    path = Path(path).resolve()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise DataError(f"{path}: templates file not found") from None
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    book = parse_templates(data, str(path))
    with _cache_lock:
        _cache[path] = (mtime, book)
    return book
