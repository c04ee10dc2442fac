"""The mean-pooled classifier: when "auto" picks it, that it really reads the token mean, and
that its folders load in plain transformers once the suite has registered the class."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from training_samples import QUICK

from services.training import TextClassifier
from services.training.pooling import register_auto_classes, resolve_pooling, trained_with_mean_pooling

pytestmark = pytest.mark.slow


def test_auto_pooling_follows_the_backbones_sentence_transformers_settings(backbone, tmp_path):
    assert trained_with_mean_pooling(backbone) and resolve_pooling("auto", backbone) == "mean"
    assert resolve_pooling("model", backbone) == "model"
    cls_pooled = tmp_path / "cls"
    shutil.copytree(backbone, cls_pooled)
    settings = json.loads((cls_pooled / "1_Pooling" / "config.json").read_text())
    settings.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    (cls_pooled / "1_Pooling" / "config.json").write_text(json.dumps(settings))
    assert resolve_pooling("auto", cls_pooled) == "model"
    (cls_pooled / "modules.json").unlink()  # a plain transformers folder
    assert resolve_pooling("auto", cls_pooled) == "model"
    assert resolve_pooling("auto", "some-org/some-hub-model") == "model"


def test_mean_pooled_classifier_reads_the_masked_mean_of_the_token_vectors(trained_classifier):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    folder = trained_classifier.model_dir
    config = json.loads((folder / "config.json").read_text())
    assert trained_classifier.params["pooling"] == "mean" and config["model_type"] == "suite_mean_pooled"
    assert config["encoder"]["model_type"] == "bert" and config["id2label"]["0"] == "greeting"

    register_auto_classes()
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = ["hi", "will it rain in paris on sunday afternoon"]  # the short one is padded
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    encoder = AutoModel.from_config(model.encoder.config)
    encoder.load_state_dict(model.encoder.state_dict(), strict=False)
    with torch.inference_mode():
        logits = model(**batch).logits
        hidden = encoder.eval()(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = model.classifier((hidden * mask).sum(1) / mask.sum(1))
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)

    suite_side = TextClassifier.from_pretrained(folder)
    alone = np.concatenate([suite_side.predict_proba([text]) for text in texts])  # no padding at all
    np.testing.assert_allclose(suite_side.predict_proba(texts), alone, atol=1e-5)
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), alone, atol=1e-5)


def test_a_mean_pooled_folder_loads_in_bfloat16_whole(trained_classifier):
    from transformers import AutoModelForSequenceClassification, pipeline

    register_auto_classes()
    folder = str(trained_classifier.model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.bfloat16)
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}  # encoder and head alike
    texts = ["hi", "will it rain in paris on sunday afternoon"]
    exact = [p["label"] for p in pipeline("text-classification", model=folder, device=-1)(texts, batch_size=2)]
    half = pipeline("text-classification", model=folder, device=-1, dtype=torch.bfloat16)
    assert [p["label"] for p in half(texts, batch_size=2)] == exact


def test_pooling_model_keeps_the_architectures_own_head(engine, backbone, intent_rows, tmp_path):
    result = engine.train_classifier(
        backbone,
        intent_rows,
        None,
        dict(QUICK, max_steps=2, pooling="model"),
        output_dir=tmp_path / "cls",
        progress=False,
    )
    config = json.loads((Path(result.model_dir) / "config.json").read_text())
    assert result.params["pooling"] == "model" and config["architectures"] == ["BertForSequenceClassification"]


def test_a_mean_pooled_classifier_can_be_fine_tuned_again(engine, trained_classifier, intent_rows, tmp_path):
    result = engine.train_classifier(
        str(trained_classifier.model_dir),
        intent_rows,
        None,
        dict(QUICK, max_steps=2),
        output_dir=tmp_path / "again",
        progress=False,
    )
    config = json.loads((Path(result.model_dir) / "config.json").read_text())
    assert config["model_type"] == "suite_mean_pooled"
    assert TextClassifier.from_pretrained(result.model_dir).labels == ["greeting", "music", "weather"]
