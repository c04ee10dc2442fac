"""Items and interactions: reading CSV/JSONL files and validating every row before anything is written."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from suite.errors import DataError

SAMPLE_DIR = Path(__file__).parent / "data"
SAMPLE_ITEMS = SAMPLE_DIR / "items.jsonl"
SAMPLE_INTERACTIONS = SAMPLE_DIR / "interactions.csv"

MAX_ID_CHARS = 200
SHOWN_PROBLEMS = 5
ITEM_FIELDS = {"id", "title", "description", "tags", "created_at", "metadata"}
CREATED_AT_KEYS = ("created_at", "published", "date")
ID_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]+$")


@dataclass
class Item:
    id: str
    title: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass
class Interaction:
    user: str
    item: str
    timestamp: datetime | None = None
    event: str | None = None
    rating: float | None = None


# -- item text ---------------------------------------------------------------------------
class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def item_text(item: Item, template: str) -> str:
    """The text an item is embedded and searched by: the template, one part per line, blanks dropped."""
    values = _Blank({k: v for k, v in item.metadata.items() if isinstance(v, str | int | float)})
    values.update(title=item.title, description=item.description, tags=", ".join(item.tags))
    try:
        rendered = template.format_map(values)
    except (ValueError, IndexError, AttributeError) as exc:
        raise DataError(f"text_template {template!r} is not a valid format string: {exc}") from None
    parts = [" ".join(line.split()) for line in rendered.splitlines()]
    return " ".join(part if part[-1] in ".!?:;" else part + "." for part in parts if part)


# -- reading files -----------------------------------------------------------------------
def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV (header row) or JSON Lines file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        raise DataError(f"{path}: unsupported file type '{suffix}' (use .csv, .tsv or .jsonl)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (binary file or another encoding?)") from None
    if "\x00" in text:
        raise DataError(f"{path}: binary file, expected CSV or JSON Lines text")
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    if suffix in (".csv", ".tsv"):
        yield from _csv_rows(path, text, "\t" if suffix == ".tsv" else ",")
    else:
        yield from _json_lines(path, text)


def _json_lines(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a plain JSON array is accepted too
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
        for number, row in enumerate(rows, start=1):
            yield number, _require_object(path, number, row)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number}: not valid JSON: {exc.msg}") from None
            yield number, _require_object(path, number, row)


def _require_object(path: Path, number: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{path}: line {number}: expected a JSON object, got {type(row).__name__}")
    return row


def _csv_rows(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise DataError(f"{path}: no header row")
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
    try:
        for row in reader:
            if None in row:
                raise DataError(f"{path}: line {reader.line_num}: more values than header columns")
            if any(value and value.strip() for value in row.values()):
                yield reader.line_num, {k: v.strip() if isinstance(v, str) else v for k, v in row.items()}
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV: {exc}") from None


# -- validation --------------------------------------------------------------------------
class Problems:
    """Bad rows of one file, reported together in one line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, line: int | None, message: str) -> None:
        self.items.append(f"line {line}: {message}" if line is not None else message)

    def raise_if_any(self, what: str) -> None:
        if not self.items:
            return
        shown = "; ".join(self.items[:SHOWN_PROBLEMS])
        more = f" (and {len(self.items) - SHOWN_PROBLEMS} more)" if len(self.items) > SHOWN_PROBLEMS else ""
        raise DataError(f"{self.source}: {len(self.items)} bad {what}, nothing imported: {shown}{more}")


def clean_id(value: Any, what: str) -> str:
    """A stripped id string; ValueError with the reason if it cannot be one."""
    if value is None or isinstance(value, dict | list | bool):
        raise ValueError(f"missing or invalid {what}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"invalid {what} {value!r}")
        value = int(value)
    text = str(value).strip()
    if not text:
        raise ValueError(f"empty {what}")
    if len(text) > MAX_ID_CHARS:
        raise ValueError(f"{what} longer than {MAX_ID_CHARS} characters")
    if not ID_PATTERN.match(text):
        raise ValueError(f"{what} {text[:40]!r} contains control characters")
    return text


def parse_tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        tags = [str(tag) for tag in value]
    elif isinstance(value, str):
        separator = ";" if ";" in value else "|" if "|" in value else ","
        tags = value.split(separator)
    else:
        raise ValueError(f"tags must be a list or a string, not {type(value).__name__}")
    return [" ".join(tag.split()) for tag in tags if tag and tag.strip()]


def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601 text or Unix seconds, as naive UTC; None when blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid timestamp {value!r}")
    if isinstance(value, int | float) or (isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip())):
        try:
            seconds = float(value)
            if not math.isfinite(seconds):
                raise ValueError(f"invalid timestamp {value!r}")
            return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)
        except (OverflowError, OSError):  # beyond the years datetime (or the platform's time_t) can hold
            raise ValueError(f"timestamp {value!r} is out of range") from None
    if not isinstance(value, str):
        raise ValueError(f"invalid timestamp {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"invalid timestamp {value!r} (use ISO 8601 or Unix seconds)") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # e.g. 9999-12-31T23:59-01:00 is in year 10000 in UTC
            raise ValueError(f"timestamp {value!r} is out of range") from None
    return parsed


def _text_field(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise ValueError(f"{name} must be text")
    return " ".join(str(value).split())


def item_from_record(row: dict[str, Any], template: str) -> Item:
    """One validated item; ValueError naming the first problem."""
    item = Item(
        id=clean_id(row.get("id", row.get("item_id")), "item id"),
        title=_text_field(row, "title"),
        description=_text_field(row, "description"),
        tags=parse_tags(row.get("tags")),
    )
    metadata = row.get("metadata")
    if isinstance(metadata, str) and metadata.strip():
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            raise ValueError("metadata is not a JSON object") from None
    if metadata not in (None, "") and not isinstance(metadata, dict):
        raise ValueError("metadata must be a JSON object")
    item.metadata = dict(metadata or {})
    for key, value in row.items():
        if key not in ITEM_FIELDS and key != "item_id" and value not in (None, ""):
            item.metadata[key] = value
    created = next((row.get(key) for key in CREATED_AT_KEYS if row.get(key) not in (None, "")), None)
    item.created_at = parse_timestamp(created)
    if not item_text(item, template):
        raise ValueError(f"item '{item.id}' has no text (title, description and tags are all empty)")
    return item


def parse_items(records: Iterable[tuple[int, dict[str, Any]]], template: str, source: str) -> list[Item]:
    """Every item of a file, or one DataError listing the first bad rows (duplicates, no text...)."""
    problems = Problems(source)
    items: list[Item] = []
    first_line: dict[str, int] = {}
    for line, row in records:
        try:
            item = item_from_record(row, template)
        except ValueError as exc:
            problems.add(line, str(exc))
            continue
        if item.id in first_line:
            problems.add(line, f"duplicate item id '{item.id}' (first on line {first_line[item.id]})")
            continue
        first_line[item.id] = line
        items.append(item)
    problems.raise_if_any("items")
    if not items:
        raise DataError(f"{source}: no items found")
    return items


def interaction_from_record(row: dict[str, Any]) -> Interaction:
    rating = row.get("rating")
    if rating in (None, ""):
        rating = None
    else:
        try:
            rating = float(rating)
        except (TypeError, ValueError):
            raise ValueError(f"rating {rating!r} is not a number") from None
        if not math.isfinite(rating):
            raise ValueError(f"rating {rating!r} is not a number")
    event = row.get("event", row.get("event_type"))
    return Interaction(
        user=clean_id(row.get("user", row.get("user_id")), "user"),
        item=clean_id(row.get("item", row.get("item_id")), "item"),
        timestamp=parse_timestamp(row.get("timestamp")),
        event=" ".join(str(event).split()).lower() or None if event not in (None, "") else None,
        rating=rating,
    )


def parse_interactions(
    records: Iterable[tuple[int, dict[str, Any]]], item_exists: Callable[[str], bool], source: str
) -> list[Interaction]:
    """Every interaction of a file, or one DataError listing the first bad rows (unknown items...)."""
    problems = Problems(source)
    interactions: list[Interaction] = []
    first_line: dict[tuple[str, str, datetime | None], int] = {}
    for line, row in records:
        try:
            interaction = interaction_from_record(row)
        except ValueError as exc:
            problems.add(line, str(exc))
            continue
        if not item_exists(interaction.item):
            problems.add(line, f"unknown item '{interaction.item}'")
            continue
        key = (interaction.user, interaction.item, interaction.timestamp)
        if key in first_line:
            problems.add(line, f"duplicate interaction of '{key[0]}' with '{key[1]}' (first on line {first_line[key]})")
            continue
        first_line[key] = line
        interactions.append(interaction)
    problems.raise_if_any("interactions")
    if not interactions:
        raise DataError(f"{source}: no interactions found")
    return interactions


def load_items(path: str | Path, template: str) -> list[Item]:
    return parse_items(read_records(path), template, str(path))


def load_interactions(path: str | Path, item_exists: Callable[[str], bool]) -> list[Interaction]:
    return parse_interactions(read_records(path), item_exists, str(path))
