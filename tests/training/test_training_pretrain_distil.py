"""Continued masked-LM pre-training and knowledge distillation, on a tiny random MPNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import build_mpnet
from training_samples import INTENTS, QUICK

from services.training import LabeledText, TextClassifier
from suite.errors import ConfigError, DataError

TEXTS = [text for texts in INTENTS.values() for text in texts]


@pytest.fixture(scope="module")
def mpnet(tmp_path_factory) -> str:
    return str(build_mpnet(tmp_path_factory.mktemp("mpnet") / "model", [*TEXTS, "a short one", "another probe"]))


def test_whole_word_masking_masks_every_piece_of_a_chosen_word(mpnet):
    from services.settings import TrainingConfig
    from services.training.folders import load_tokenizer
    from services.training.params import resolve_params
    from services.training.tasks.masked_lm import MaskedLMTask

    tokenizer = load_tokenizer(mpnet)
    params = resolve_params(TrainingConfig(), {"mlm_probability": 0.5}, "masked-lm")
    task = MaskedLMTask(torch.nn.Linear(1, 1), tokenizer, ["zebra quagga hello there"] * 8, None, params, "cpu")
    assert len(task.ids[0]) > 6  # the unknown words split into letter pieces
    masked, _, labels = task._mask(task.ids, task.words, torch.Generator().manual_seed(0))
    for row, words in enumerate(task.words):
        chosen = (labels[row, : len(words)] != -100).numpy()
        assert chosen.any()
        for word in range(words.max() + 1):
            assert len(set(chosen[words == word])) == 1  # all of a word's pieces, or none
        assert not chosen[words < 0].any()  # never <s> or </s>
    assert (masked[labels != -100] == tokenizer.mask_token_id).float().mean() > 0.5


def test_masked_lm_pre_training_lowers_held_out_perplexity_and_initialises_a_missing_head(engine, mpnet, tmp_path):
    from transformers import AutoModelForMaskedLM

    params = dict(QUICK, max_steps=30, learning_rate=5e-3, early_stopping_patience=0)
    result = engine.train_masked_lm(mpnet, TEXTS * 2, TEXTS, params, output_dir=tmp_path / "lm", progress=False)
    metrics = result.metrics
    assert result.kind == "masked-lm" and metrics["mlm_head"] == "new"  # a sentence-transformers folder has none
    assert metrics["perplexity"] < metrics["perplexity_before"] and metrics["masked_lm_loss_before"] > 0
    assert metrics["documents"] == 2 * len(TEXTS) and metrics["tokens"] > metrics["documents"]
    assert (result.model_dir / "modules.json").is_file()  # later fine-tunes still mean-pool
    AutoModelForMaskedLM.from_pretrained(result.model_dir)
    again = engine.train_masked_lm(
        str(result.model_dir), TEXTS, TEXTS, dict(QUICK, max_steps=1), output_dir=tmp_path / "lm2", progress=False
    )
    assert again.metrics["mlm_head"] == "pretrained"
    # A classifier fine-tunes on the pre-trained folder.
    rows = [LabeledText(text, label) for label, texts in INTENTS.items() for text in texts]
    engine.train_classifier(
        str(result.model_dir), rows, None, dict(QUICK, max_steps=2), output_dir=tmp_path / "c", progress=False
    )


def test_masked_lm_pre_training_resumes_after_a_crash(engine, mpnet, tmp_path):
    def crash(info):
        if info.step == 4:
            raise KeyboardInterrupt

    params = dict(QUICK, max_steps=6, checkpoint_every=2, eval_every=100)
    run = dict(output_dir=tmp_path / "lm", checkpoint_dir=tmp_path / "ckpt", progress=False)
    with pytest.raises(KeyboardInterrupt):
        engine.train_masked_lm(mpnet, TEXTS, None, params, callback=crash, **run)
    result = engine.train_masked_lm(mpnet, TEXTS, None, params, **run)
    assert result.resumed_from_step == 4 and result.steps == 6


def test_masked_lm_refuses_texts_without_content(engine, mpnet, tmp_path):
    with pytest.raises(DataError, match="no texts"):
        engine.train_masked_lm(mpnet, ["", "  "], None, QUICK, output_dir=tmp_path / "x", progress=False)


def test_a_student_distils_from_a_teacher_whose_scores_are_computed_once(
    trained_classifier, mpnet, intent_rows, tmp_path
):
    from services.training import TrainingEngine
    from suite.config import TrainingConfig

    engine = TrainingEngine(TrainingConfig(num_threads=1), cache_dir=tmp_path / "cache")
    teacher = str(trained_classifier.model_dir)
    params = dict(QUICK, teacher=teacher, distill_alpha=0.7, learning_rate=5e-3, max_steps=20)
    transfer = ["hello hello", "play jazz please", "rain in paris"]
    result = engine.train_classifier(
        mpnet, intent_rows, intent_rows[::3], params, output_dir=tmp_path / "s", transfer_texts=transfer, progress=False
    )
    metrics = result.metrics
    assert metrics["teacher"]["name"] == teacher and metrics["teacher_accuracy"] > 0.9
    assert metrics["transfer_texts"] == 3 and metrics["teacher_texts_scored"] == len(intent_rows) + 3
    assert result.params["teacher"] == teacher and result.params["distill_alpha"] == 0.7
    assert list((tmp_path / "cache").glob("*.npz"))
    # The second run finds every teacher score in the cache.
    again = engine.train_classifier(
        mpnet,
        intent_rows,
        None,
        dict(params, max_steps=1),
        output_dir=tmp_path / "s2",
        transfer_texts=transfer,
        progress=False,
    )
    assert again.metrics["teacher_texts_scored"] == 0
    # The student is an ordinary classifier: int8 and ONNX as any other.
    texts = [row.text for row in intent_rows]
    student = TextClassifier.from_pretrained(result.model_dir, device="cpu")
    agree = np.mean([p.label for p in student.predict(texts)] == np.array([row.label for row in intent_rows]))
    assert agree > 0.5  # chance: 1/3
    assert TextClassifier.from_pretrained(result.model_dir, device="cpu", quantize=True).predict(texts[:2])
    assert TextClassifier.from_pretrained(result.model_dir, runtime="onnx", quantize=True).predict(texts[:2])
    np.testing.assert_allclose(
        TextClassifier.from_pretrained(result.model_dir, runtime="onnx").predict_proba(texts),
        student.predict_proba(texts),
        atol=1e-4,
    )


def test_a_teacher_with_other_labels_is_refused_in_one_line(engine, trained_classifier, mpnet, tmp_path):
    rows = [LabeledText(text, "yes" if i % 2 else "no") for i, text in enumerate(TEXTS)]
    params = dict(QUICK, teacher=str(trained_classifier.model_dir))
    with pytest.raises(ConfigError, match=r"other labels than the task \(the teacher also predicts greeting") as exc:
        engine.train_classifier(mpnet, rows, None, params, output_dir=tmp_path / "s", progress=False)
    assert "\n" not in str(exc.value)
