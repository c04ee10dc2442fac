"""Training examples, their checks, splits and fingerprints, and the CSV/JSONL readers plugins reuse."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TypeVar

from services.errors import DataError


@dataclass(frozen=True)
class LabeledText:
    """One example for single-label classification."""

    text: str
    label: str


@dataclass(frozen=True)
class TextPair:
    """One bi-encoder training pair: a query and the passage that answers it, and optionally a hard
    negative (a passage close to the query that does not answer it), ranked below the positive
    together with the batch's other positives."""

    query: str
    positive: str
    negative: str | None = None


Row = TypeVar("Row", LabeledText, TextPair)


def data_fingerprint(rows: Sequence[LabeledText | TextPair]) -> str:
    """sha256 of the examples, in order (order changes training, so it changes the fingerprint)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([type(row).__name__, *astuple(row)], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def split_train_validation(
    rows: Sequence[Row], fraction: float = 0.1, seed: int = 42, stratify: bool = True
) -> tuple[list[Row], list[Row]]:
    """Hold out ``fraction`` of ``rows`` for validation, keeping the original order in both parts.

    Classification rows are stratified by label: each label gives ``round(n * fraction)``
    examples (at least one when it has two or more, never its last one), so every label
    seen in validation is also seen in training. Pairs are split at random.
    """
    if not 0 <= fraction < 1:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    rng = random.Random(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        key = row.label if stratify and isinstance(row, LabeledText) else ""
        groups[key].append(index)
    held_out: set[int] = set()
    for key in sorted(groups):
        indices = groups[key]
        count = min(round(len(indices) * fraction), len(indices) - 1)
        if fraction > 0 and len(indices) >= 2 and key != "":
            count = max(count, 1)
        held_out.update(rng.sample(indices, count))
    train = [row for index, row in enumerate(rows) if index not in held_out]
    validation = [row for index, row in enumerate(rows) if index in held_out]
    return train, validation


def check_classification_data(
    train: Sequence[LabeledText], validation: Sequence[LabeledText] | None = None
) -> list[str]:
    """Raise :class:`DataError` for data that cannot train a classifier; return the sorted labels."""
    if not train:
        raise DataError("no training examples")
    for name, rows in (("training", train), ("validation", validation or ())):
        for number, row in enumerate(rows, start=1):
            if not isinstance(row.text, str) or not row.text.strip():
                raise DataError(f"{name} example {number} has an empty text")
            if not isinstance(row.label, str) or not row.label.strip():
                raise DataError(f"{name} example {number} has an empty label")
    labels = sorted({row.label for row in train})
    if len(labels) < 2:
        raise DataError(f"classification needs at least two labels, the training data has only {labels[0]!r}")
    unseen = sorted({row.label for row in validation or ()} - set(labels))
    if unseen:
        raise DataError(f"validation labels not in the training data: {', '.join(map(repr, unseen[:5]))}")
    return labels


def check_pair_data(pairs: Sequence[TextPair], validation: Sequence[TextPair] | None = None) -> None:
    """Raise :class:`DataError` for pairs that cannot train a bi-encoder."""
    if not pairs:
        raise DataError("no training pairs")
    for name, rows in (("training", pairs), ("validation", validation or ())):
        for number, pair in enumerate(rows, start=1):
            if not all(isinstance(text, str) and text.strip() for text in (pair.query, pair.positive)):
                raise DataError(f"{name} pair {number} has an empty query or positive")
    if len(pairs) < 2:
        raise DataError("bi-encoder training needs at least two pairs (the other pairs are the negatives)")


# -- files --------------------------------------------------------------------------------


def load_labeled_file(path: str | Path, text_field: str = "text", label_field: str = "label") -> list[LabeledText]:
    """Read classification examples from a CSV (header row) or JSONL file.

    Every problem is a one-line :class:`DataError` naming the file and, where it applies,
    the line: missing file, not UTF-8, empty, missing column, invalid JSON, empty value.
    """
    return [LabeledText(text, label) for text, label in read_records(path, (text_field, label_field))]


def load_pair_file(path: str | Path, query_field: str = "query", positive_field: str = "positive") -> list[TextPair]:
    """Read bi-encoder pairs from a CSV or JSONL file (see :func:`load_labeled_file`)."""
    return [TextPair(query, positive) for query, positive in read_records(path, (query_field, positive_field))]


def load_text_file(path: str | Path, text_field: str = "text") -> list[str]:
    """Unlabelled documents: a ``.txt`` file holds one per line; CSV, TSV and JSONL files
    hold them in column ``text_field``. Empty lines are skipped; the errors are
    :func:`load_labeled_file`'s."""
    path = Path(path)
    if path.suffix.lower() != ".txt":
        return [text for (text,) in read_records(path, (text_field,))]
    lines = [line.strip() for line in _read_text(path).splitlines()]
    texts = [line for line in lines if line]
    if not texts:
        raise DataError(f"{path}: file is empty")
    return texts


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None


def read_records(path: str | Path, fields: Sequence[str]) -> list[tuple[str, ...]]:
    """The values of ``fields`` of every record of a CSV, TSV or JSONL file, as stripped strings."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    suffix = path.suffix.lower()
    if suffix == ".json" and text.lstrip().startswith("["):
        records = _json_array_records(path, text)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        records = _jsonl_records(path, text)
    elif suffix in (".csv", ".tsv", ".txt"):
        records = _csv_records(path, text, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise DataError(f"{path}: unsupported file type '{suffix}' (use .csv, .tsv, .jsonl or .json)")
    rows = []
    for line, record in records:
        missing = [field for field in fields if field not in record]
        if missing:
            found = ", ".join(map(str, record)) or "none"
            raise DataError(f"{path}:{line}: missing field '{missing[0]}' (found: {found})")
        values = tuple("" if record[field] is None else str(record[field]).strip() for field in fields)
        empty = [field for field, value in zip(fields, values, strict=True) if not value]
        if empty:
            raise DataError(f"{path}:{line}: empty '{empty[0]}'")
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: no records")
    return rows


def _csv_records(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    try:
        for record in reader:
            if None in record:  # more cells than header columns
                raise DataError(f"{path}:{reader.line_num}: more values than the {len(header)} header columns")
            if any(value is not None and value != "" for value in record.values()):
                yield reader.line_num, record
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}); expected one object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def _json_array_records(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: item {number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def text_fingerprint(texts: Sequence[str]) -> str:
    """sha256 of unlabelled texts, in order."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
