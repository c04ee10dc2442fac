"""A tiny but real classifier folder (random weights, the suite backbone's tokenizer) to register."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_classifier_template(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from services.backbone import resolve_backbone

    folder = tmp_path_factory.mktemp("tiny") / "classifier"
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("default"), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        id2label={0: "greet", 1: "leave"},
        label2id={"greet": 0, "leave": 1},
    )
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def model_dir(tiny_classifier_template: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, free to move or damage."""
    target = tmp_path / "trained"
    shutil.copytree(tiny_classifier_template, target)
    return target
