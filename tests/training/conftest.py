"""Real fine-tuning of the packaged all-MiniLM-L6-v2 on tiny data, one torch thread."""

from __future__ import annotations

import pytest
from training_samples import INTENTS, QUICK


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def backbone() -> str:
    from services.backbone import resolve_backbone

    return resolve_backbone("default")


@pytest.fixture(scope="session")
def intent_rows():
    from services.training import LabeledText

    return [LabeledText(text, label) for label, texts in INTENTS.items() for text in texts]


@pytest.fixture(scope="session")
def engine():
    from services.training import TrainingEngine
    from suite.config import TrainingConfig

    return TrainingEngine(TrainingConfig(num_threads=1))


@pytest.fixture(scope="session")
def trained_classifier(engine, backbone, intent_rows, tmp_path_factory):
    """One classifier shared by the tests that only read it."""
    output = tmp_path_factory.mktemp("classifier") / "model"
    params = dict(QUICK, eval_every=3)  # no validation: every 3 steps logs the training loss
    return engine.train_classifier(backbone, intent_rows, None, params, output_dir=output, progress=False)
