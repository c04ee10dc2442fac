"""`suite pretrain` and `suite train --backbone/--teacher/--transfer` end to end, through the CLI's
own entry point, on a tiny plugin whose backbone is a tiny random MPNet."""

from __future__ import annotations

import json

import pytest
from tiny_models import build_mpnet
from training_samples import INTENTS, QUICK

from services.training import LabeledText
from suite import cli
from suite.context import SuiteContext
from suite.training_tasks import TrainingTask

TEXTS = [text for texts in INTENTS.values() for text in texts]


class TinyPlugin:
    """A plugin that offers texts and fine-tunes an intent classifier on its backbone."""

    def suite_pretraining_texts(self, ctx):
        return [*TEXTS, "", TEXTS[0]]  # blanks and duplicates are the caller's to drop

    def suite_training_tasks(self, ctx):
        return [TrainingTask("tiny", "intent", "classification", "tiny intents", run=train_intents)]


class BrokenPlugin:
    def suite_pretraining_texts(self, ctx):
        raise ValueError("the store is gone")


def train_intents(ctx, overrides):
    rows = [LabeledText(text, label) for label, texts in INTENTS.items() for text in texts]
    output = ctx.settings.data_dir / "tmp" / "tiny-intent"
    params = dict(QUICK, max_steps=4, learning_rate=5e-3)
    result = ctx.trainer.train_classifier(
        ctx.backbone("tiny"), rows, rows[::4], params, output_dir=output, progress=False
    )
    return ctx.registry.register_result(result, "tiny", "intent", backbone=ctx.backbone_name("tiny"))


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    mpnet = build_mpnet(tmp_path / "mpnet", TEXTS)
    ctx = SuiteContext.create(discover=False, backbone=str(mpnet), data_dir=tmp_path / "data")
    ctx.plugins.register(TinyPlugin(), "tiny")
    ctx.plugins.register(BrokenPlugin(), "broken")
    monkeypatch.setattr(cli.SuiteContext, "create", lambda *a, **k: ctx)

    def suite(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*args])
        out, err = capsys.readouterr()
        return exit_info.value.code or 0, out, err

    suite.ctx = ctx
    suite.mpnet = mpnet
    return suite


def test_pretrain_registers_backbone_versions_that_the_next_fine_tune_starts_from(run, tmp_path):
    ctx = run.ctx
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS * 2) + "\n\n")
    code, out, err = run("pretrain", "tiny", "--texts", str(texts), "--max-steps", "3", "--no-progress")
    assert code == 0, err
    assert "registered tiny/backbone@v1 (active)" in " ".join(out.split()) and "perplexity" in out
    card = ctx.registry.get("tiny", "backbone", 1).card
    assert card.kind == "masked-lm" and card.metrics["steps"] == 3
    assert card.metrics["documents"] + card.metrics["held_out_documents"] == len(TEXTS)
    assert card.metrics["perplexity_before"] > 0 and "no masked-LM head" in card.notes
    assert card.metrics["corpus_fingerprint"] == card.data_fingerprint and card.backbone == str(run.mpnet)
    assert ctx.backbone("tiny") == str(ctx.registry.get("tiny", "backbone", 1).path)

    code, out, err = run("pretrain", "tiny", "--max-steps", "2", "--no-progress")  # the plugin's own texts
    assert code == 0, err
    second = ctx.registry.get("tiny", "backbone", 2).card
    assert second.backbone == "tiny/backbone@v1" and "the tiny plugin's own texts" in second.notes
    assert second.metrics["documents"] + second.metrics["held_out_documents"] == len(TEXTS)
    assert second.metrics["mlm_head"] == "pretrained"

    assert run("models", "activate", "tiny/backbone@v1")[0] == 0  # roll back
    code, out, err = run("train", "tiny:intent")
    assert code == 0, err
    assert ctx.registry.get("tiny", "intent", 1).card.backbone == "tiny/backbone@v1"

    code, out, err = run("train", "tiny:intent", "--backbone", str(run.mpnet))
    assert code == 0, err
    assert ctx.registry.get("tiny", "intent", 2).card.backbone == str(run.mpnet)
    assert ctx.backbone("tiny") == str(ctx.registry.get("tiny", "backbone", 1).path)  # for one run only

    code, out, err = run("train", "tiny:intent", "--teacher", "tiny/intent@2", "--transfer", "plugin", "--alpha", "0.8")
    assert code == 0, err
    distilled = ctx.registry.get("tiny", "intent", 3)
    assert distilled.card.metrics["teacher"]["name"] == "tiny/intent@2"
    assert distilled.card.hyperparameters["distill_alpha"] == 0.8
    assert "teacher_accuracy" in distilled.card.metrics and distilled.card.metrics["transfer_texts"] == 0  # all seen
    assert "Distilled from `tiny/intent@2`" in (distilled.path / "README.md").read_text()
    assert list((ctx.settings.data_dir / "cache" / "teacher-scores").glob("*.npz"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "file is empty"), (b"\n \n", "file is empty"), (b"caf\xe9 au lait\n", "not UTF-8 text")],
)
def test_pretrain_refuses_a_bad_text_file_in_one_line(run, tmp_path, content, expected):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    code, out, err = run("pretrain", "tiny", "--texts", str(bad))
    assert code != 0 and expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_pretrain_reads_a_text_column_of_csv_and_jsonl(tmp_path):
    from services.training import load_text_file

    (tmp_path / "a.csv").write_text("id,body\n1,first doc\n2,second doc\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "third doc"}) + "\n")
    assert load_text_file(tmp_path / "a.csv", "body") == ["first doc", "second doc"]
    assert load_text_file(tmp_path / "b.jsonl", "body") == ["third doc"]


def test_train_refuses_a_teacher_with_other_labels_and_transfer_without_teacher(run, tmp_path):
    other = tmp_path / "teacher"
    from services.training import TrainingEngine

    rows = [LabeledText(text, "yes" if i % 2 else "no") for i, text in enumerate(TEXTS)]
    TrainingEngine().train_classifier(
        str(run.mpnet), rows, None, dict(QUICK, max_steps=1), output_dir=other, progress=False
    )
    code, out, err = run("train", "tiny:intent", "--teacher", str(other))
    assert code != 0 and "other labels than the task" in err and len(err.strip().splitlines()) == 1
    code, out, err = run("train", "tiny:intent", "--transfer", "plugin")
    assert code != 0 and "--transfer needs --teacher" in err
    code, out, err = run("train", "tiny:intent", "--teacher", "tiny/intent@7")
    assert code != 0 and "no model registered" in err


def test_pretrain_names_a_plugin_whose_texts_fail_and_one_that_has_none(run):
    code, out, err = run("pretrain", "broken")
    assert code != 0 and "plugin 'broken'" in err and "the store is gone" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = run("pretrain", "nosuch")
    assert code != 0 and "unknown plugin 'nosuch'" in err
