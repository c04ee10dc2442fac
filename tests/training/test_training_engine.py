"""Fine-tuning for real (all-MiniLM-L6-v2, tiny data, a few steps): learning, strategies, early
stopping, resuming, and the saved folders loading in plain transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from training_samples import INTENTS, QUICK, read_weights

from services.training import LabeledText, StepInfo, TextClassifier, TextPair
from suite.errors import ConfigError, DataError, ModelError

pytestmark = pytest.mark.slow

UNSEEN = ["hey, good afternoon", "is it going to be hot tomorrow", "play something by the beatles", "hi"]


def test_classifier_learns_and_saves_a_standard_folder(trained_classifier, intent_rows):
    result = trained_classifier
    assert result.steps == 12 and result.kind == "classification" and result.train_examples == 24
    assert result.labels == ["greeting", "music", "weather"]
    losses = [entry["train_loss"] for entry in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.7
    assert result.metrics["evaluated_on"] == "train" and result.metrics["accuracy"] > 0.8  # chance: 1/3
    assert result.metrics["confusion_matrix"] and set(result.metrics["per_label"]) == set(INTENTS)
    files = {p.name for p in result.model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert not [name for name in files if name.endswith((".bin", ".pt"))]
    assert result.params["learning_rate"] > 0 and result.params["max_steps"] == 12

    classifier = TextClassifier.from_pretrained(result.model_dir)
    predictions = classifier.predict([row.text for row in intent_rows])
    accuracy = np.mean([p.label == row.label for p, row in zip(predictions, intent_rows, strict=True)])
    assert accuracy == pytest.approx(result.metrics["accuracy"])
    assert predictions[0].scores[predictions[0].label] == predictions[0].score
    assert sum(predictions[0].scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert classifier.predict([]) == [] and classifier.predict_proba(UNSEEN).shape == (4, 3)


def test_transformers_pipeline_loads_it_with_identical_predictions(trained_classifier, intent_rows):
    from transformers import pipeline

    texts = [row.text for row in intent_rows] + UNSEEN
    classifier = TextClassifier.from_pretrained(trained_classifier.model_dir)
    assert classifier.model is classifier._exact  # eager until a second call: a one-shot command never traces
    classifier.predict(UNSEEN[:1])
    assert type(classifier.prepare()._exact).__name__ == "TracedClassifier"  # the fast path is in use
    reference = pipeline("text-classification", model=str(trained_classifier.model_dir), device=-1)
    for batch_size in (1, 8, 64):
        ours = classifier.predict(texts, batch_size=batch_size)
        theirs = reference(texts, batch_size=batch_size)
        assert [p.label for p in ours] == [p["label"] for p in theirs]
        assert [p.score for p in ours] == pytest.approx([p["score"] for p in theirs], abs=1e-5)


def test_quantized_classifier_agrees_on_the_training_texts(trained_classifier, intent_rows):
    texts = [row.text for row in intent_rows]
    exact = [p.label for p in TextClassifier.from_pretrained(trained_classifier.model_dir).predict(texts)]
    quick = [
        p.label for p in TextClassifier.from_pretrained(trained_classifier.model_dir, quantize=True).predict(texts)
    ]
    assert np.mean([a == b for a, b in zip(exact, quick, strict=True)]) >= 0.9


def test_onnx_runtime_gives_the_torch_probabilities_at_every_batch_size(trained_classifier, intent_rows):
    texts = [row.text for row in intent_rows] + UNSEEN
    exact = TextClassifier.from_pretrained(trained_classifier.model_dir)
    onnx = TextClassifier.from_pretrained(trained_classifier.model_dir, runtime="onnx")
    assert onnx.runtime == "onnx" and exact.runtime == "torch"
    for batch_size in (1, 8, 64):  # single texts have no mask; batches are padded
        np.testing.assert_allclose(onnx.predict_proba(texts, batch_size), exact.predict_proba(texts), atol=1e-5)
    assert [p.label for p in onnx.predict(texts)] == [p.label for p in exact.predict(texts)]
    with pytest.raises(ConfigError, match="unknown inference runtime 'tensorrt'"):
        TextClassifier.from_pretrained(trained_classifier.model_dir, runtime="tensorrt")
    with pytest.raises(ConfigError, match="in float32"):
        TextClassifier.from_pretrained(trained_classifier.model_dir, runtime="onnx", precision="bfloat16")
    # int8: ONNX Runtime's dynamic quantization of the same graph, a third of its size.
    int8 = TextClassifier.from_pretrained(trained_classifier.model_dir, runtime="onnx", quantize=True)
    assert int8._logits.size_bytes < 0.4 * onnx._logits.size_bytes
    np.testing.assert_allclose(int8.predict_proba(texts), exact.predict_proba(texts), atol=0.15)
    assert np.mean([p.label == q.label for p, q in zip(int8.predict(texts), exact.predict(texts), strict=True)]) > 0.9


def test_an_int8_graph_that_changes_the_outputs_is_refused_in_one_line(trained_classifier, monkeypatch):
    import onnx

    from services.training import onnx_runtime

    quantized = onnx_runtime.quantized

    def with_the_logits_negated(graph: bytes) -> bytes:  # a quantization gone wrong, for certain
        model = onnx.load_from_string(quantized(graph))
        last = next(node for node in model.graph.node if "logits" in node.output)
        last.output[list(last.output).index("logits")] = "logits_before"
        model.graph.node.append(onnx.helper.make_node("Neg", ["logits_before"], ["logits"]))
        return model.SerializeToString()

    monkeypatch.setattr(onnx_runtime, "quantized", with_the_logits_negated)
    with pytest.raises(ModelError, match="int8 export of this model disagrees with it") as refused:
        TextClassifier.from_pretrained(trained_classifier.model_dir, runtime="onnx", quantize=True)
    assert "\n" not in str(refused.value)


def test_bfloat16_scoring_keeps_the_float32_labels_by_rescoring_near_ties(trained_classifier, intent_rows, monkeypatch):
    import services.training.inference as inference

    texts = [row.text for row in intent_rows] + UNSEEN
    exact = TextClassifier.from_pretrained(trained_classifier.model_dir)
    fast = TextClassifier.from_pretrained(trained_classifier.model_dir, precision="bfloat16")
    assert (exact.precision, fast.precision) == ("float32", "bfloat16")
    assert type(fast.prepare()._fast_model).__name__ == "TracedClassifier"  # the traced fast path is in use
    reference = exact.predict_proba(texts)
    for batch_size in (1, 8, 64):
        fast_probabilities = fast.predict_proba(texts, batch_size)
        assert (fast_probabilities.argmax(1) == reference.argmax(1)).all()
        np.testing.assert_allclose(fast_probabilities, reference, atol=5e-2)

    monkeypatch.setattr(inference, "NEAR_TIE_MARGIN", 0.0)  # nothing re-scored: bfloat16's own numbers
    rounded = fast.predict_proba(texts)
    assert 0 < np.abs(rounded - reference).max() < 5e-2
    monkeypatch.setattr(inference, "NEAR_TIE_MARGIN", 1.1)  # every row re-scored: float32's numbers
    before = fast.rechecked
    np.testing.assert_allclose(fast.predict_proba(texts), reference, atol=1e-5)
    assert fast.rechecked - before == len(texts)

    auto = TextClassifier.from_pretrained(trained_classifier.model_dir, precision="auto")
    assert auto.precision == ("bfloat16" if inference.native_bfloat16() else "float32")
    with pytest.raises(ConfigError, match="unknown inference precision 'float8'"):
        TextClassifier.from_pretrained(trained_classifier.model_dir, precision="float8")
    with pytest.raises(ConfigError, match="exclude each other"):
        TextClassifier.from_pretrained(trained_classifier.model_dir, precision="bfloat16", quantize=True)
    with pytest.raises(ConfigError, match="in float32"):
        TextClassifier.from_pretrained(trained_classifier.model_dir, precision="bfloat16", runtime="onnx")


def test_a_trace_that_bakes_in_a_shape_is_refused_for_the_eager_model(trained_classifier):
    from types import SimpleNamespace

    from services.training.inference import CHECK_TEXTS, PROBE_TEXTS, TracedClassifier, traced_for_inference

    tokenizer = TextClassifier.from_pretrained(trained_classifier.model_dir).tokenizer
    traced_length, check_length = (
        len(tokenizer(texts, padding=True)["input_ids"][0]) for texts in (PROBE_TEXTS, CHECK_TEXTS)
    )
    assert traced_length != check_length

    class ShapeDependent(torch.nn.Module):  # Python control flow on a shape: a trace keeps one branch
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(2))

        def forward(self, input_ids, attention_mask):
            branch = 1.0 if input_ids.shape[1] == traced_length else 0.0
            return SimpleNamespace(logits=self.bias + torch.full((input_ids.shape[0], 2), branch))

    class ShapeFree(ShapeDependent):
        def forward(self, input_ids, attention_mask):
            return SimpleNamespace(logits=self.bias + attention_mask.sum(1, keepdim=True).float())

    shape_dependent, shape_free = ShapeDependent(), ShapeFree()
    assert traced_for_inference(shape_dependent, tokenizer) is shape_dependent
    traced = traced_for_inference(shape_free, tokenizer)
    assert isinstance(traced, TracedClassifier)
    ids = torch.ones(3, 5, dtype=torch.long)
    torch.testing.assert_close(traced(ids).logits, shape_free(ids, torch.ones_like(ids)).logits)


def test_freeze_keeps_embeddings_and_lower_layers_unchanged(engine, backbone, intent_rows, tmp_path):
    result = engine.train_classifier(
        backbone,
        intent_rows,
        None,
        dict(QUICK, max_steps=2, strategy="freeze", freeze_layers=2),
        output_dir=tmp_path / "frozen",
        progress=False,
    )
    before, after = read_weights(Path(backbone)), backbone_weights(result.model_dir)
    before = {k: v for k, v in before.items() if k in after}  # not the position_ids buffer
    unchanged = [k for k in before if k.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1."))]
    changed = [k for k in before if k.startswith("encoder.layer.5.") and k.endswith("weight")]
    assert unchanged and changed
    assert all(torch.equal(before[k], after[k]) for k in unchanged)
    assert all(not torch.equal(before[k], after[k]) for k in changed)


def backbone_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    """A classifier's backbone weights under the backbone's own names ("bert." or, mean-pooled, "encoder.")."""
    weights = read_weights(model_dir)
    prefix = next(p for p in ("bert.", "encoder.") if f"{p}embeddings.word_embeddings.weight" in weights)
    return {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}


def test_gradual_unfreezing_schedule(backbone):
    from transformers import AutoModelForSequenceClassification

    from services.training.layers import LayerSchedule

    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=3, use_safetensors=True)

    def trainable(schedule: LayerSchedule, step: int) -> set[str]:
        schedule.apply(step)
        parts = {
            name.split(".")[1] if not name.startswith("bert.encoder") else name.split(".")[3]
            for name, p in model.named_parameters()
            if p.requires_grad
        }
        return {part if not part.isdigit() else f"layer{part}" for part in parts}

    schedule = LayerSchedule(model, "gradual", freeze_layers=0, unfreeze_every=10)
    assert trainable(schedule, 0) == {"pooler", "weight", "bias"}  # classifier.weight/bias + pooler
    assert trainable(schedule, 10) == {"pooler", "weight", "bias", "layer5"}
    assert trainable(schedule, 25) == {"pooler", "weight", "bias", "layer5", "layer4"}
    assert "embeddings" not in trainable(schedule, 60) and "layer0" in trainable(schedule, 60)
    assert "embeddings" in trainable(schedule, 70)
    floor = LayerSchedule(model, "gradual", freeze_layers=2, unfreeze_every=1)
    assert trainable(floor, 100) == {"pooler", "weight", "bias", "layer2", "layer3", "layer4", "layer5"}
    with pytest.raises(ConfigError, match="only 6 encoder layers"):
        LayerSchedule(model, "freeze", freeze_layers=7, unfreeze_every=1)


def test_gradual_training_unfreezes_from_the_top(engine, backbone, intent_rows, tmp_path):
    result = engine.train_classifier(
        backbone,
        intent_rows,
        None,
        dict(QUICK, max_steps=2, strategy="gradual", unfreeze_every=1),
        output_dir=tmp_path / "gradual",
        progress=False,
    )
    before, after = read_weights(Path(backbone)), backbone_weights(result.model_dir)
    key = "encoder.layer.{}.attention.self.query.weight"
    assert not torch.equal(before[key.format(5)], after[key.format(5)])  # unfrozen for step 2
    assert torch.equal(before[key.format(4)], after[key.format(4)])  # would unfreeze at step 3
    assert torch.equal(before["embeddings.word_embeddings.weight"], after["embeddings.word_embeddings.weight"])


def test_early_stopping_stops_and_keeps_the_best_weights(engine, backbone, intent_rows, tmp_path):
    validation = intent_rows[::3]
    params = dict(QUICK, eval_every=1, early_stopping_patience=2, learning_rate=3e-3, head_lr_multiplier=1)
    result = engine.train_classifier(
        backbone, intent_rows, validation, params, output_dir=tmp_path / "m", progress=False
    )
    assert result.metrics["stopped_early"] and result.steps < 12
    assert result.steps == result.metrics["best_step"] + 2  # two evaluations without gain
    assert result.metrics["evaluated_on"] == "validation"
    assert result.metrics["macro_f1"] == max(entry["macro_f1"] for entry in result.history)
    saved = TextClassifier.from_pretrained(result.model_dir).predict([row.text for row in validation])
    accuracy = np.mean([p.label == row.label for p, row in zip(saved, validation, strict=True)])
    assert accuracy == pytest.approx(result.metrics["accuracy"])  # the best weights, not the last ones


class Interrupted(Exception):
    pass


def test_resume_after_a_crash_continues_and_matches_an_uninterrupted_run(engine, backbone, intent_rows, tmp_path):
    params = dict(QUICK, max_steps=6, checkpoint_every=3, eval_every=2)
    straight = engine.train_classifier(backbone, intent_rows, None, params, output_dir=tmp_path / "a", progress=False)

    def crash_at_step_4(info: StepInfo) -> None:
        if info.step == 4:
            raise Interrupted

    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(Interrupted):
        engine.train_classifier(
            backbone,
            intent_rows,
            None,
            params,
            output_dir=tmp_path / "b",
            checkpoint_dir=checkpoints,
            progress=False,
            callback=crash_at_step_4,
        )
    assert [p.name for p in checkpoints.iterdir()] == ["step-00000003"] and not (tmp_path / "b").exists()
    steps_seen: list[int] = []
    resumed = engine.train_classifier(
        backbone,
        intent_rows,
        None,
        params,
        output_dir=tmp_path / "b",
        checkpoint_dir=checkpoints,
        progress=False,
        callback=lambda info: steps_seen.append(info.step),
    )
    assert resumed.resumed_from_step == 3 and steps_seen == [4, 5, 6] and resumed.steps == 6
    assert [e["step"] for e in resumed.history] == [e["step"] for e in straight.history] == [2, 4, 6]
    assert [e["train_loss"] for e in resumed.history] == pytest.approx([e["train_loss"] for e in straight.history])
    expected, actual = read_weights(straight.model_dir), read_weights(resumed.model_dir)
    assert all(torch.allclose(expected[k], actual[k], atol=1e-6) for k in expected)

    with pytest.raises(ModelError, match="different data or parameters"):
        engine.train_classifier(
            backbone,
            intent_rows[:-1],
            None,
            params,
            output_dir=tmp_path / "c",
            checkpoint_dir=checkpoints,
            progress=False,
        )


def test_bad_data_and_parameters_fail_before_any_model_loads(engine, backbone, intent_rows, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(DataError, match="at least two labels"):
        engine.train_classifier(backbone, [LabeledText("a", "x"), LabeledText("b", "x")], output_dir=out)
    with pytest.raises(DataError, match="not in the training data"):
        engine.train_classifier(backbone, intent_rows, [LabeledText("hm", "other")], output_dir=out)
    with pytest.raises(DataError, match="no training pairs"):
        engine.train_biencoder(backbone, [], output_dir=out)
    with pytest.raises(ConfigError, match="batch_size"):
        engine.train_classifier(backbone, intent_rows, None, {"batch_size": 0}, output_dir=out)
    with pytest.raises(ConfigError, match="bogus"):
        engine.train_classifier(backbone, intent_rows, None, {"bogus": 1}, output_dir=out)
    with pytest.raises(ConfigError, match="early_stopping_metric"):
        engine.train_biencoder(
            backbone, [TextPair("a", "b")] * 2, None, {"early_stopping_metric": "accuracy"}, output_dir=out
        )
    assert not out.exists()


def test_pickle_weights_are_refused(engine, backbone, intent_rows, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((Path(backbone) / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(ModelError, match="refusing to unpickle"):
        engine.train_classifier(str(folder), intent_rows, output_dir=tmp_path / "out", progress=False)
    with pytest.raises(ModelError, match="refusing to unpickle"):
        TextClassifier.from_pretrained(folder)
    with pytest.raises(ModelError, match="no config.json"):
        TextClassifier.from_pretrained(tmp_path / "missing")
    with pytest.raises(ModelError, match="not a classifier"):
        TextClassifier.from_pretrained(backbone)


def test_a_corrupt_classifier_folder_is_a_one_line_model_error(trained_classifier, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_classifier.model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ModelError, match="cannot load classifier") as caught:
        TextClassifier.from_pretrained(broken)
    assert "\n" not in str(caught.value)


# Made-up code names: the pretrained model cannot know which passage each one means.
PAIRS = [
    ("project falcon", "the quarterly budget spreadsheet"),
    ("project heron", "the onboarding checklist for new staff"),
    ("project otter", "minutes of the board meeting"),
    ("project lynx", "the server migration runbook"),
    ("project wren", "customer satisfaction survey results"),
    ("project moose", "the office relocation floor plan"),
    ("project gecko", "holiday rota for the support team"),
    ("project bison", "the brand style guide"),
]


def test_biencoder_learns_its_pairs_and_saves_a_plain_automodel(engine, backbone, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from services.training.batching import mean_pool
    from services.training.metrics import retrieval_metrics

    pairs = [TextPair(q, p) for q, p in PAIRS]

    def embed(folder: str, texts: list[str]) -> np.ndarray:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder, use_safetensors=True).eval()
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            return mean_pool(model(**batch).last_hidden_state, batch["attention_mask"]).numpy()

    def scores(folder: str) -> dict:
        return retrieval_metrics(embed(folder, [q for q, _ in PAIRS]), embed(folder, [p for _, p in PAIRS]), range(8))

    before = scores(backbone)
    params = {
        "batch_size": 8,
        "max_steps": 12,
        "eval_every": 6,
        "learning_rate": 1e-4,
        "seed": 7,
        "symmetric_loss": True,
    }
    # Validating on the training pairs: the numbers to compare with are known.
    result = engine.train_biencoder(backbone, pairs, pairs, params, output_dir=tmp_path / "bi", progress=False)
    after = scores(str(result.model_dir))
    assert result.kind == "biencoder" and result.metrics["evaluated_on"] == "validation"
    assert result.metrics["baseline"]["mrr"] == pytest.approx(before["mrr"], abs=1e-5)  # step 0: the backbone
    assert [entry["step"] for entry in result.history] == [0, 6, 12]
    assert after["mrr"] == pytest.approx(result.metrics["mrr"], abs=1e-5)
    assert after["mrr"] > before["mrr"] + 0.1 and after["recall@1"] > before["recall@1"]
    assert {"recall@1", "recall@10", "mrr"} <= set(result.metrics)
    assert (result.model_dir / "model.safetensors").is_file() and (result.model_dir / "modules.json").is_file()

    from services.embeddings import Embedder

    vectors = Embedder(str(result.model_dir), cache_dir=None).encode([q for q, _ in PAIRS])
    assert np.allclose(vectors, embed(str(result.model_dir), [q for q, _ in PAIRS]), atol=1e-5)


def test_a_head_imprinted_from_class_centroids_classifies_before_any_training_step(backbone, intent_rows):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from services.training import TrainingEngine
    from services.training.tasks import ClassificationTask
    from suite.config import TrainingConfig

    torch.manual_seed(0)
    labels = sorted({row.label for row in intent_rows})
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=3, use_safetensors=True).eval()
    params = TrainingEngine(TrainingConfig()).resolve_params({"max_steps": 1})
    task = ClassificationTask(model, tokenizer, intent_rows, None, labels, params, torch.device("cpu"))
    untrained = task.evaluate(on_train=True)["accuracy"]
    head = model.classifier.weight.detach().clone()
    task.init_head_from_centroids()
    assert not torch.equal(head, model.classifier.weight)
    assert untrained < 0.7 and task.evaluate(on_train=True)["accuracy"] > 0.9  # chance: 1/3


def test_bfloat16_training_runs_the_steps_under_autocast_and_saves_float32_weights(
    engine, backbone, intent_rows, tmp_path, monkeypatch
):
    from services.training.tasks.classification import ClassificationTask

    autocast_seen = []
    real_loss = ClassificationTask.loss

    def spying_loss(self, batch):
        autocast_seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return real_loss(self, batch)

    monkeypatch.setattr(ClassificationTask, "loss", spying_loss)
    params = dict(QUICK, precision="bfloat16")
    result = engine.train_classifier(backbone, intent_rows, None, params, output_dir=tmp_path / "m", progress=False)
    assert autocast_seen and all(autocast_seen) and result.metrics["train_precision"] == "bfloat16"
    assert result.metrics["accuracy"] > 1.5 / len(INTENTS)  # it learned, well above chance on its training data
    assert {tensor.dtype for tensor in backbone_weights(result.model_dir).values()} == {torch.float32}

    autocast_seen.clear()
    plain = engine.train_classifier(
        backbone, intent_rows, None, dict(QUICK, max_steps=2), output_dir=tmp_path / "f", progress=False
    )
    assert autocast_seen and not any(autocast_seen) and plain.metrics["train_precision"] == "float32"


def test_auto_training_precision_follows_the_hardware(monkeypatch):
    from services.training import inference, loop

    cpu = torch.device("cpu")
    assert not loop.uses_bfloat16("float32", cpu) and loop.uses_bfloat16("bfloat16", cpu)
    monkeypatch.setattr(inference, "native_bfloat16", lambda: True)
    assert loop.uses_bfloat16("auto", cpu)
    monkeypatch.setattr(inference, "native_bfloat16", lambda: False)
    assert not loop.uses_bfloat16("auto", cpu)
    assert not loop.uses_bfloat16("auto", torch.device("mps"))
