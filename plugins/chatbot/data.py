"""Reading and writing the chatbot's data files: labelled utterances, Q&A pairs, plain lists.

Labelled files are CSV (header ``text,label``) or JSONL (``{"text": ..., "label": ...}``),
read by the training service's readers so every plugin reports the same errors.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from services.training import LabeledText
from services.training.data import load_labeled_file, read_records
from suite.errors import DataError

MAX_FILE_BYTES = 200_000_000
# Labels people give rows no intent covers: never one more intent.
OUT_OF_SCOPE_LABELS = frozenset({"oos", "out_of_scope", "out-of-scope", "outofscope", "none", "ood"})


def is_out_of_scope_label(label: str, configured: str) -> bool:
    return label == configured or label.strip().lower() in OUT_OF_SCOPE_LABELS


def read_text_file(path: Path) -> str:
    """The file's text, with one-line errors for the usual problems."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path}: file too large ({path.stat().st_size} bytes)")
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise DataError(f"{path}: looks like a binary file, expected UTF-8 text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_labeled_texts(path: Path) -> list[LabeledText]:
    """Labelled utterances from a CSV or JSONL file with ``text`` and ``label`` fields."""
    check_csv_header(Path(path), ("text", "label"))
    return load_labeled_file(path)


def check_csv_header(path: Path, required: Sequence[str]) -> None:
    """A CSV whose first line is data, not a header, gets an error naming the header it needs."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return  # the reader reports missing files and other formats
    try:
        first = next(csv.reader(io.StringIO(read_text_file(path).split("\n", 1)[0])), [])
    except DataError:
        return  # unreadable: the reader says why in its own words
    names = {name.strip().lower() for name in first}
    if not names - {""}:
        return  # empty: the reader says so
    missing = [name for name in required if name not in names]
    if missing and not names & set(required):
        raise DataError(
            f"{path}: no header line; the first line must be '{','.join(required)}' (found: {','.join(first)[:80]!r})"
        )


def load_qa_pairs(path: Path) -> list[tuple[str, str]]:
    """Question/answer pairs from a CSV or JSONL file with ``question`` and ``answer`` fields."""
    return [(question, answer) for question, answer in read_records(path, ("question", "answer"))]


def csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV file whose optional columns may be empty; ``required`` must be in the header."""
    reader = csv.DictReader(io.StringIO(read_text_file(path), newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(f"{path}: no '{missing[0]}' column (found: {', '.join(header) or 'no header'})")
    reader.fieldnames = header
    try:
        for row in reader:
            yield reader.line_num, {key: " ".join((value or "").split()) for key, value in row.items() if key}
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None


def load_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file; ``#`` starts a comment line."""
    return [line.strip() for line in read_text_file(path).splitlines() if line.strip() and not line.startswith("#")]


def load_retrieval_eval(path: Path) -> list[tuple[str, str | None]]:
    """(query, expected document, or None when the knowledge base has no answer) from CSV query,doc."""
    return [(row["query"], row.get("doc") or None) for _, row in csv_rows(path, ("query",)) if row["query"]]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def labeled_csv(rows: Iterable[tuple[str, str]]) -> str:
    """``text,label`` CSV text, the format ``load_labeled_texts`` reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buffer.getvalue()
