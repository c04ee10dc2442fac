"""Any encoder as backbone: a tiny random MPNet (no pooler in its head, no token type ids, a
relative attention bias shared by its layers) trains, freezes, exports and serves like BERT."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import build_mpnet
from training_samples import INTENTS, QUICK

from services.training import TextClassifier, TextPair
from services.training.serving import OnnxClassifier


@pytest.fixture(scope="module")
def mpnet(tmp_path_factory) -> str:
    texts = [text for texts in INTENTS.values() for text in texts]
    return str(build_mpnet(tmp_path_factory.mktemp("mpnet") / "model", [*texts, "a short one", "another probe"]))


@pytest.mark.parametrize("pooling", ["model", "mean"])
def test_an_mpnet_backbone_fine_tunes_into_a_classifier_with_either_pooling(
    engine, mpnet, intent_rows, tmp_path, pooling
):
    params = dict(QUICK, pooling=pooling, learning_rate=5e-3, max_steps=20)
    result = engine.train_classifier(mpnet, intent_rows, None, params, output_dir=tmp_path / "m", progress=False)
    assert result.params["pooling"] == pooling and result.metrics["accuracy"] > 0.5  # chance: 1/3
    classifier = TextClassifier.from_pretrained(result.model_dir, device="cpu").prepare()
    assert type(classifier._exact).__name__ == "TracedClassifier"  # the trace agreed with the model
    texts = [row.text for row in intent_rows]
    eager = TextClassifier(classifier.model, classifier.tokenizer, device=torch.device("cpu")).predict_proba(texts)
    np.testing.assert_allclose(classifier.predict_proba(texts), eager, atol=1e-4)
    fast = TextClassifier.from_pretrained(result.model_dir, device="cpu", precision="bfloat16")
    assert [p.label for p in fast.predict(texts)] == [p.label for p in classifier.predict(texts)]
    onnx = TextClassifier.from_pretrained(result.model_dir, runtime="onnx")
    np.testing.assert_allclose(onnx.predict_proba(texts), eager, atol=1e-4)
    served = OnnxClassifier.from_folder(result.model_dir)  # the graph saved at training, MPNet's padding id
    assert served.pad_id == classifier.pad_id == 1
    np.testing.assert_allclose(served.predict_proba(texts, batch_size=8), eager, atol=1e-4)
    int8 = TextClassifier.from_pretrained(result.model_dir, device="cpu", quantize=True)
    assert int8.predict_proba(texts).shape == (len(texts), 3)


def test_freezing_an_mpnet_keeps_its_embeddings_shared_attention_bias_and_lower_layers(mpnet):
    from transformers import AutoModelForSequenceClassification

    from services.training.layers import LayerSchedule, parameter_groups

    model = AutoModelForSequenceClassification.from_pretrained(mpnet, num_labels=3)
    LayerSchedule(model, "freeze", freeze_layers=1, unfreeze_every=1).apply(0)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert "mpnet.encoder.relative_attention_bias.weight" in frozen
    assert any(name.startswith("mpnet.embeddings.") for name in frozen)
    assert any(".layer.0." in name for name in frozen) and not any(".layer.1." in name for name in frozen)
    assert not any(name.startswith("classifier.") for name in frozen)
    gradual = LayerSchedule(model, "gradual", freeze_layers=0, unfreeze_every=10)
    gradual.apply(0)
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == {"classifier"}
    gradual.apply(10)
    assert any(".layer.1." in n for n, p in model.named_parameters() if p.requires_grad)
    # The shared bias is body: the body's learning rate, not the new head's.
    bias = model.mpnet.encoder.relative_attention_bias.weight
    group = next(g for g in parameter_groups(model, 1e-4, 0.01, 10.0) if any(p is bias for p in g["params"]))
    assert group["lr"] == 1e-4


def test_an_mpnet_backbone_trains_a_biencoder(engine, mpnet, tmp_path):
    texts = INTENTS["weather"]
    pairs = [TextPair(a, b) for a, b in zip(texts, texts[1:], strict=False)]
    result = engine.train_biencoder(
        mpnet, pairs, None, dict(QUICK, max_steps=3), output_dir=tmp_path / "b", progress=False
    )
    assert (result.model_dir / "modules.json").is_file() and result.steps == 3
