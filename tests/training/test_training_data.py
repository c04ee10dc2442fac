"""Training data: checks, stratified split, fingerprints and the CSV/JSONL readers."""

from __future__ import annotations

from collections import Counter

import pytest

from services.training import (
    LabeledText,
    TextPair,
    check_classification_data,
    data_fingerprint,
    load_labeled_file,
    load_pair_file,
    split_train_validation,
)
from suite.errors import DataError


def rows(counts: dict[str, int]) -> list[LabeledText]:
    return [LabeledText(f"{label} example {i}", label) for label, n in counts.items() for i in range(n)]


def test_fingerprint_is_stable_and_changes_with_content_and_order():
    data = rows({"a": 2, "b": 2})
    assert data_fingerprint(data) == data_fingerprint(list(data))
    assert data_fingerprint(data) != data_fingerprint(data[::-1])
    assert data_fingerprint(data) != data_fingerprint([*data[:-1], LabeledText("other", "b")])
    assert len(data_fingerprint([])) == 64


def test_split_is_stratified_deterministic_and_keeps_every_label_in_training():
    data = rows({"a": 20, "b": 10, "c": 2, "d": 1})
    train, val = split_train_validation(data, fraction=0.2, seed=3)
    assert len(train) + len(val) == len(data) and not set(train) & set(val)
    assert Counter(r.label for r in val) == {"a": 4, "b": 2, "c": 1}
    assert {r.label for r in train} == {"a", "b", "c", "d"}
    assert (train, val) == split_train_validation(data, fraction=0.2, seed=3)
    assert train == [r for r in data if r in set(train)]  # original order kept


def test_split_of_pairs_is_random_and_fraction_zero_keeps_everything():
    pairs = [TextPair(f"q{i}", f"p{i}") for i in range(50)]
    train, val = split_train_validation(pairs, fraction=0.1)
    assert len(val) == 5 and len(train) == 45
    assert split_train_validation(pairs, fraction=0) == (pairs, [])
    with pytest.raises(DataError):
        split_train_validation(pairs, fraction=1.5)


def test_classification_data_checks():
    assert check_classification_data(rows({"b": 1, "a": 1})) == ["a", "b"]
    with pytest.raises(DataError, match="no training examples"):
        check_classification_data([])
    with pytest.raises(DataError, match="at least two labels"):
        check_classification_data(rows({"only": 3}))
    with pytest.raises(DataError, match="'c'"):
        check_classification_data(rows({"a": 2, "b": 2}), rows({"a": 1, "c": 1}))
    with pytest.raises(DataError, match="empty text"):
        check_classification_data([LabeledText(" ", "a"), LabeledText("x", "b")])


def test_load_labeled_csv_and_jsonl(tmp_path):
    csv_file = tmp_path / "data.csv"
    csv_file.write_text('text,intent\n"hello, there",greet\n\nbye now,leave\n', encoding="utf-8")
    assert load_labeled_file(csv_file, label_field="intent") == [
        LabeledText("hello, there", "greet"),
        LabeledText("bye now", "leave"),
    ]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "héllo", "label": 1}\n\n{"text": "bye", "label": "x"}\n', encoding="utf-8")
    assert load_labeled_file(jsonl) == [LabeledText("héllo", "1"), LabeledText("bye", "x")]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "q", "positive": "p", "extra": 1}\n')
    assert load_pair_file(pairs) == [TextPair("q", "p")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"  \n", "file is empty"),
        ("latin1.csv", "text,label\ncaf\xe9,a\n".encode("latin-1"), "not UTF-8"),
        ("columns.csv", b"text,category\nhi,a\n", "missing field 'label' (found: text, category)"),
        ("blank.csv", b"text,label\nhi,\n", "data/blank.csv:2: empty 'label'"),
        ("bad.jsonl", b'{"text": "a", "label": "b"}\n{oops\n', "bad.jsonl:2: not valid JSON"),
        ("list.jsonl", b'["a", "b"]\n', "expected a JSON object"),
        ("data.xlsx", b"x", "unsupported file type"),
    ],
)
def test_load_labeled_file_errors_are_one_line(tmp_path, name, content, message):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        load_labeled_file(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
