"""Labelled training data: CSV or JSONL with ``text``, ``label`` and an optional ``topic``."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suite.errors import DataError

SENTIMENT_LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class LabelledSentence:
    text: str
    label: str
    topic: str | None = None


def load_labelled(path_or_sample: str | Path) -> list[LabelledSentence]:
    """Read and check a training file; raise :class:`DataError` with one line on any problem."""
    from plugins.sentiment.sources import resolve_path  # the sources import the store (SQLAlchemy)

    path = resolve_path(str(path_or_sample))
    if not path.is_file():
        raise DataError(f"{path}: training data not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    records = _jsonl(path, text) if path.suffix.lower() in (".jsonl", ".json") else _csv(path, text)
    rows = [_row(path, where, record) for where, record in records]
    if not rows:
        raise DataError(f"{path}: no labelled rows")
    return rows


def _csv(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"text", "label"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need text,label[,topic])")
    return [(f"line {reader.line_num}", row) for row in reader]


def _jsonl(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    return records


def _row(path: Path, where: str, record: Any) -> LabelledSentence:
    if not isinstance(record, dict):
        raise DataError(f"{path}: {where}: expected an object with text and label")
    text = str(record.get("text") or "").strip()
    label = str(record.get("label") or "").strip().lower()
    topic = str(record.get("topic") or "").strip().lower() or None
    if not text:
        raise DataError(f"{path}: {where}: empty text")
    if label not in SENTIMENT_LABELS:
        raise DataError(f"{path}: {where}: label {label!r} is not one of {', '.join(SENTIMENT_LABELS)}")
    return LabelledSentence(text, label, topic)
