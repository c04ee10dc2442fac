"""The packaged all-MiniLM-L6-v2 and one shared, cache-less embedder on the CPU."""

from __future__ import annotations

import pytest
import torch

from services.backbone import resolve_backbone
from services.embeddings import Embedder


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    torch.set_num_threads(1)  # the test machine's cores are shared


@pytest.fixture(scope="session")
def model_path() -> str:
    return resolve_backbone("default")


@pytest.fixture(scope="session")
def embedder(model_path: str) -> Embedder:
    return Embedder(model_path, batch_size=4, device="cpu")
