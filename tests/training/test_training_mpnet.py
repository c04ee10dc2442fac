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


def test_hard_negatives_join_the_in_batch_negatives_except_where_they_are_a_positive(engine, mpnet, tmp_path):
    from services.training.params import resolve_params
    from services.training.tasks.biencoder import BiencoderTask
    from suite.config import TrainingConfig

    texts = INTENTS["weather"][:4]
    music = INTENTS["music"][:4]
    plain = [TextPair(a, b) for a, b in zip(texts, texts[1:] + texts[:1], strict=True)]
    # Pair 0's negative is pair 1's positive: a false negative for pair 1, so masked there only.
    hard = [TextPair(p.query, p.positive, music[i] if i else plain[1].positive) for i, p in enumerate(plain)]
    params = resolve_params(TrainingConfig(), dict(QUICK, batch_size=4), "biencoder")
    tasks = [BiencoderTask.create(mpnet, pairs, None, params, torch.device("cpu")) for pairs in (plain, hard)]
    batch = np.arange(4)
    torch.manual_seed(0)
    with torch.no_grad():
        queries = tasks[1]._embed([tasks[1].query_ids[i] for i in batch])
        scores = tasks[1]._negative_scores(queries, batch, torch.from_numpy(tasks[1].positive_keys[batch]))
        assert scores.shape == (4, 4) and torch.isinf(scores).nonzero().tolist() == [[1, 0]]
        assert tasks[0]._negative_scores(queries, batch, torch.zeros(4)).shape == (4, 0)
        assert tasks[1].loss(batch) > tasks[0].loss(batch)  # more to rank below each positive
    result = engine.train_biencoder(
        mpnet, hard, None, dict(QUICK, max_steps=2), output_dir=tmp_path / "h", progress=False
    )
    assert result.steps == 2 and np.isfinite(result.history[-1]["train_loss"])
