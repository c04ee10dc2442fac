"""The ONNX serving graph saved with every trained classifier, and the torch-free classifier that
runs it: same outputs as the torch model, chosen only where it gives them, and no torch import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from training_samples import QUICK

from services.training import TextClassifier, loading
from services.training.loading import load_classifier
from services.training.serving import SERVING_GRAPH, OnnxClassifier
from suite.errors import ConfigError

pytestmark = pytest.mark.slow

LONG = " ".join(["what will the weather be like on the coast this weekend and next week"] * 8)
TEXTS = ["hi", "play something by the beatles", "is it going to be hot tomorrow", LONG, "good morning to you all"]


def test_the_saved_graph_gives_the_torch_probabilities_and_features(trained_classifier):
    folder = trained_classifier.model_dir
    assert (folder / SERVING_GRAPH).is_file()
    exact = TextClassifier.from_pretrained(folder, device="cpu", max_length=32)
    served = OnnxClassifier.from_folder(folder, max_length=32)
    assert served.labels == exact.labels
    # The same token ids, truncation included (LONG has far more than 32 tokens).
    assert [e.ids for e in served.tokenizer.encode_batch(TEXTS)] == exact._token_ids(TEXTS)
    for batch_size in (1, 2, 64):  # padded batches of several lengths, and none
        np.testing.assert_allclose(served.predict_proba(TEXTS, batch_size), exact.predict_proba(TEXTS), atol=1e-5)
    features, logits = served.features_and_logits(TEXTS, batch_size=2)
    torch_features, torch_logits = exact.features_and_logits(TEXTS)
    np.testing.assert_allclose(logits, torch_logits, atol=1e-4)
    np.testing.assert_allclose(features, torch_features, atol=1e-4)
    assert [p.label for p in served.predict(TEXTS)] == [p.label for p in exact.predict(TEXTS)]
    assert served.predict([]) == [] and served.predict_proba([]).shape == (0, 3)


@pytest.fixture
def no_native_bfloat16(monkeypatch):
    """The choices below as on a CPU without native bfloat16, whatever this machine has."""
    monkeypatch.setattr(loading, "prefers_bfloat16", lambda precision: False)


def test_load_classifier_takes_the_graph_only_where_it_gives_what_torch_would(
    trained_classifier, tmp_path, no_native_bfloat16
):
    folder = trained_classifier.model_dir
    assert isinstance(load_classifier(folder, device="cpu"), OnnxClassifier)
    assert isinstance(load_classifier(folder, device="cpu", runtime="onnx"), OnnxClassifier)
    assert isinstance(load_classifier(folder, device="cpu", runtime="torch"), TextClassifier)
    assert isinstance(load_classifier(folder, device="cpu", quantize=True), TextClassifier)  # int8 is torch's
    assert isinstance(load_classifier(folder, device="cpu", precision="bfloat16"), TextClassifier)
    without = tmp_path / "without-graph"
    shutil.copytree(folder, without, ignore=shutil.ignore_patterns(SERVING_GRAPH))
    assert isinstance(load_classifier(without, device="cpu"), TextClassifier)  # a model saved before the graph
    with pytest.raises(ConfigError, match="unknown inference runtime 'tensorrt'"):
        load_classifier(folder, runtime="tensorrt")


def test_with_native_bfloat16_only_a_server_or_a_process_with_torch_takes_torch(trained_classifier, monkeypatch):
    folder = trained_classifier.model_dir
    monkeypatch.setattr(loading, "prefers_bfloat16", lambda precision: precision == "auto")
    with monkeypatch.context() as one_shot:
        one_shot.delitem(sys.modules, "torch")  # a one-shot command has not imported torch
        assert isinstance(load_classifier(folder, device="cpu"), OnnxClassifier)
    assert isinstance(load_classifier(folder, device="cpu"), TextClassifier)  # torch is paid for already
    monkeypatch.setattr(loading, "_long_running", False)
    loading.set_long_running()  # a server takes torch in bfloat16 even before importing it
    with monkeypatch.context() as server:
        server.delitem(sys.modules, "torch")
        assert not loading._saved_graph_serves(folder, device="cpu", quantize=False, runtime="auto", precision="auto")
    assert loading._saved_graph_serves(folder, device="cpu", quantize=False, runtime="auto", precision="float32")


def test_a_cold_process_serves_the_graph_without_importing_torch(trained_classifier):
    script = (
        "import sys\n"
        "from services.training.loading import load_classifier\n"
        f"classifier = load_classifier({str(trained_classifier.model_dir)!r})\n"
        "print(type(classifier).__name__, classifier.predict(['play some jazz'])[0].label)\n"
        "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    served, imported = done.stdout.splitlines()
    assert served.split()[0] == "OnnxClassifier" and imported == "[]"


def test_no_graph_is_saved_when_the_setting_is_off(backbone, intent_rows, tmp_path):
    from services.training import TrainingEngine
    from suite.config import TrainingConfig

    engine = TrainingEngine(TrainingConfig(num_threads=1, serving_graph=False))
    params = dict(QUICK, max_steps=1)
    result = engine.train_classifier(backbone, intent_rows, None, params, output_dir=tmp_path / "m", progress=False)
    assert not (result.model_dir / SERVING_GRAPH).exists()
    assert isinstance(load_classifier(result.model_dir, device="cpu"), TextClassifier)
