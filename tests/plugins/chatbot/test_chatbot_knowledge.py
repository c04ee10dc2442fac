"""The knowledge base: passages, indexing in the shared search, retrieval, composed answers, Q&A import."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from plugins.chatbot.compose import compose_answer
from plugins.chatbot.data import load_labeled_texts
from plugins.chatbot.knowledge import KnowledgeBase, document_passages, load_passages
from plugins.chatbot.options import SAMPLE_DIR
from plugins.chatbot.qa_import import agglomerative_clusters, import_qa
from plugins.chatbot.templates import load_templates
from plugins.chatbot.training import index_knowledge_base
from suite.errors import DataError


# -- passages (no model) -------------------------------------------------------------------
def test_markdown_is_split_at_headings_and_keeps_its_titles(tmp_path):
    path = tmp_path / "cards.md"
    text = (
        "# Cards\n\nIntro paragraph.\n\n## Lost cards\n\nFreeze it in the **app**.\n"
        "Then call [us](https://example.org).\n\n## Fees\n\nNo fee.\n\n```\n# not a heading? still text\n```\n"
    )
    passages = document_passages(path, text, markdown=True, max_chars=500)
    titles = [p.title for p in passages]
    assert titles == ["Cards", "Cards › Lost cards", "Cards › Fees"]
    assert passages[2].body == "No fee.\n# not a heading? still text"
    lost = passages[1]
    assert lost.body == "Freeze it in the app. Then call us."
    assert (lost.doc, lost.kind, lost.source) == ("cards", "doc", str(path))
    assert lost.text.startswith("Cards › Lost cards\n")


def test_long_sections_are_split_into_passages_of_bounded_size(tmp_path):
    sentence = "This sentence is about overdraft interest and fees. "
    text = "# Big\n\n" + "\n\n".join(sentence * 6 for _ in range(5))
    passages = document_passages(tmp_path / "big.md", text, markdown=True, max_chars=400)
    assert len(passages) > 3
    assert all(len(p.body) <= 800 for p in passages)
    assert len({p.id for p in passages}) == len(passages)


def test_sample_knowledge_base_has_faq_rows_and_document_sections():
    passages = load_passages([SAMPLE_DIR / "knowledge"])
    kinds = {p.kind for p in passages}
    assert kinds == {"faq", "doc"}
    assert sum(p.kind == "faq" for p in passages) == 10
    assert {p.doc for p in passages} >= {"faq", "security-and-fraud", "travel-abroad", "mortgages"}
    assert load_passages([SAMPLE_DIR / "knowledge"]) == passages, "ids are stable"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("faq.csv", "question,reply\nq,a\n", "no 'answer' column"),
        ("faq.csv", "question,answer\nq,\n", "empty question or answer"),
        ("notes.pdf", "%PDF", "unsupported knowledge file"),
        ("doc.md", b"\xff\xfe\x00\x00", "binary file|not UTF-8"),
    ],
)
def test_bad_knowledge_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(DataError, match=message):
        load_passages([path])


def test_missing_knowledge_path_is_an_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_passages([tmp_path / "nope"])


# -- indexing and retrieval (real embedder, real embedded search) --------------------------
@pytest.mark.slow
def test_index_retrieve_compose_and_reindex(context_factory, tmp_path):
    ctx = context_factory()
    report = index_knowledge_base(ctx)
    assert report.passages >= 20 and report.files == 4 and report.index == "chatbot-kb"
    assert report.calibration["source"] == "calibrated"
    assert report.calibration["in_kb_doc_found_top3"] >= 0.8
    assert 0.2 < report.retrieval_threshold < 0.7
    assert ctx.search.count("chatbot-kb") == report.passages

    kb = KnowledgeBase(ctx, "chatbot-kb")
    hits = kb.retrieve("what time do branches open on saturday")
    assert hits[0].passage.title == "What are your branch opening hours?"
    assert hits[0].similarity > report.retrieval_threshold
    assert kb.retrieve("how do I bake sourdough bread")[0].similarity < report.retrieval_threshold

    text, citations = compose_answer("when are branches open", hits[:1], max_chars=300)
    assert text.startswith("Our branches are open Monday to Friday") and text.endswith("[1]")
    assert citations[0].title == "What are your branch opening hours?" and citations[0].kind == "faq"
    assert citations[0].doc == "faq" and not hasattr(citations[0], "path") and 0 < citations[0].score <= 1

    # Re-indexing a changed knowledge base removes what is gone.
    own = tmp_path / "kb"
    own.mkdir()
    (own / "faq.csv").write_text("question,answer\nDo you have a branch in Leeds?,Yes on Park Row.\n", encoding="utf-8")
    report = index_knowledge_base(ctx, [own])
    assert (report.passages, report.retrieval_threshold) == (1, None)
    assert report.removed >= 20
    assert ctx.search.count("chatbot-kb") == 1
    assert kb.retrieve("branch in Leeds")[0].passage.body == "Yes on Park Row."


def test_compose_quotes_the_most_relevant_sentences_of_a_long_passage():
    from plugins.chatbot.knowledge import Passage, RetrievedPassage

    body = " ".join(
        [
            "Our savings accounts pay interest monthly.",
            "Interest rates change with the base rate.",
            "Cash withdrawals abroad cost 2.75 percent.",
            "Overdrafts are charged daily on what you use.",
        ]
        * 3
    )
    passage = Passage("p1", "Rates", body, "rates", "rates.md", "doc")
    second = Passage("p2", "Abroad", "Cash machines abroad may add their own fee. Ask first.", "x", "x.md", "doc")
    text, citations = compose_answer(
        "withdrawals abroad cost",
        [RetrievedPassage(passage, 0.03, 0.8), RetrievedPassage(second, 0.02, 0.75)],
        max_chars=120,
    )
    assert "Cash withdrawals abroad cost 2.75 percent." in text
    assert len(text.split(" [1]")[0]) <= 120
    assert text.endswith("[2]") and [c.id for c in citations] == ["p1", "p2"]


# -- question/answer import ----------------------------------------------------------------
def test_agglomerative_clusters_group_near_duplicates():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16))
    points = np.concatenate([centre + 0.05 * rng.normal(size=(5, 16)) for centre in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = agglomerative_clusters(points, threshold=0.8)
    assert len(set(labels)) == 3
    assert all(len({labels[i] for i in range(k * 5, k * 5 + 5)}) == 1 for k in range(3))
    assert len(set(agglomerative_clusters(points, threshold=1.01))) == 15
    assert agglomerative_clusters(np.zeros((0, 4)), 0.5) == []


@pytest.mark.slow
def test_import_qa_derives_intents_and_templates(context_factory, tmp_path):
    ctx = context_factory()
    qa = tmp_path / "qa.csv"
    pairs = [
        ("I lost my card", "Freeze it in the app under Cards."),
        ("my card was stolen", "Freeze your card in the app now."),
        ("I can't find my debit card", "Freeze the card in the app under Cards."),
        ("how do I reset my PIN", "Change your PIN at any cash machine."),
        ("I forgot my PIN number", "You can view your PIN in the app."),
        ("change my pin please", "Change your PIN at a cash machine {any}."),
        ("what is the weather like in Rome", "I can only help with banking."),
    ]
    with qa.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        writer.writerows(pairs)

    report = import_qa(ctx, qa, tmp_path / "out")  # the default threshold, 0.6

    assert (report.pairs, report.intents, report.unclustered) == (7, 2, 1)
    rows = load_labeled_texts(report.intents_path)
    assert len(rows) == 6
    by_label = {}
    for row in rows:
        by_label.setdefault(row.label, set()).add(row.text)
    assert {"I lost my card", "my card was stolen", "I can't find my debit card"} in by_label.values()
    book = load_templates(report.templates_path)
    assert set(book.intents) == set(by_label)
    assert all(t.template and t.slots == [] for t in book.intents.values()), "braces in answers are escaped"
    assert json.loads(report.templates_path.read_text())["intents"]
    assert "weather" in report.unclustered_path.read_text()


def test_import_qa_rejects_files_without_pairs(context_factory, tmp_path):
    ctx = context_factory()
    path = tmp_path / "qa.csv"
    path.write_text("question,reply\nq,a\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing field 'answer'"):
        import_qa(ctx, path, tmp_path / "out")
