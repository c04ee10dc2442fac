"""Importing spaCy without importing torch.

thinc, spaCy's machine-learning library, imports torch as it is imported whenever torch is
installed, to offer torch-backed layers. The suite installs torch for its transformers, but
its spaCy pipelines (en_core_web_sm and blank ones) never run a torch layer, and importing
torch costs 1.5-3 s of a cold command on a 2-core CPU: more than spaCy itself. So, where no
torch-backed spaCy package is installed and torch is not imported yet, spaCy is imported with
``import torch`` failing inside that one import; thinc then runs on numpy as it would without
torch, and torch stays importable for everything else.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType

# Packages whose pipelines run torch layers inside spaCy: with one installed, thinc keeps torch.
TORCH_PIPELINE_PACKAGES = ("spacy_transformers", "spacy_curated_transformers", "spacy_llm")
_lock = threading.Lock()


def import_spacy() -> ModuleType:
    """``import spacy``, keeping torch out of it where nothing in spaCy can use torch."""
    with _lock:
        if "spacy" in sys.modules or "torch" in sys.modules or _torch_pipelines_installed():
            import spacy

            return spacy
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
        try:
            import spacy
        finally:
            if "torch" in sys.modules and sys.modules["torch"] is None:
                del sys.modules["torch"]
        return spacy


def _torch_pipelines_installed() -> bool:
    return any(importlib.util.find_spec(name) is not None for name in TORCH_PIPELINE_PACKAGES)
