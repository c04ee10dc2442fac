"""Intents and answer templates derived from past question/answer pairs (``suite chatbot import-qa``).

Questions are embedded and grouped by average-linkage agglomerative clustering on cosine
similarity, merging while the two closest groups are more similar than ``threshold``.
Each group of at least ``min_size`` questions becomes an intent, named after its most
frequent words; its template is the group's most central answer. The files are written
for a person to review before training.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from plugins.chatbot.data import labeled_csv, load_qa_pairs, write_atomic
from plugins.chatbot.templates import IntentTemplate, TemplateBook
from suite.errors import DataError

if TYPE_CHECKING:
    from suite.context import SuiteContext

MAX_PAIRS = 5000  # the similarity matrix is n x n
WORD = re.compile(r"[a-z][a-z']+")


@dataclass
class ImportReport:
    pairs: int
    intents: int
    utterances: int
    unclustered: int
    intents_path: Path
    templates_path: Path
    unclustered_path: Path | None


def agglomerative_clusters(vectors: np.ndarray, threshold: float) -> list[int]:
    """Average-linkage clustering of L2-normalised ``vectors``; returns a cluster number per row.

    For normalised vectors the average pairwise cosine of two clusters is
    ``sum_a . sum_b / (n_a * n_b)``, so a merge only updates one row of the matrix; each
    row's best partner is cached, so a step costs O(n) instead of O(n^2).
    """
    n = len(vectors)
    if n == 0:
        return []
    sums = np.asarray(vectors, dtype=np.float64).copy()
    sizes = np.ones(n)
    similarity = sums @ sums.T
    np.fill_diagonal(similarity, -np.inf)
    alive = np.ones(n, dtype=bool)
    members = [[i] for i in range(n)]
    best = similarity.argmax(axis=1)
    while True:
        row_best = similarity[np.arange(n), best]
        row_best[~alive] = -np.inf
        a = int(row_best.argmax())
        if row_best[a] < threshold:
            break
        b = int(best[a])
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        members[a].extend(members[b])
        members[b] = []
        alive[b] = False
        similarity[b, :] = similarity[:, b] = -np.inf
        row = (sums @ sums[a]) / (sizes * sizes[a])
        row[~alive] = -np.inf
        row[a] = -np.inf
        similarity[a, :] = similarity[:, a] = row
        best[a] = int(similarity[a].argmax())
        stale = alive & ((best == a) | (best == b))
        for i in np.flatnonzero(stale):
            best[i] = int(similarity[i].argmax())
        better = alive & (row > similarity[np.arange(n), best])
        best[better] = a
    labels = [0] * n
    for number, group in enumerate(group for group in members if group):
        for index in group:
            labels[index] = number
    return labels


def intent_name(questions: Sequence[str], taken: set[str], stop_words: frozenset[str]) -> str:
    counts = Counter(
        word for question in questions for word in set(WORD.findall(question.lower())) if word not in stop_words
    )
    words = [word.replace("'", "") for word, _ in counts.most_common(3)] or ["intent"]
    name = "_".join(words)
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    taken.add(candidate)
    return candidate


def import_qa(
    ctx: SuiteContext, path: Path, output_dir: Path, *, threshold: float = 0.6, min_size: int = 2
) -> ImportReport:
    """Write ``intents.csv``, ``templates.json`` and ``unclustered.csv`` under ``output_dir``."""
    from plugins.chatbot.guard import stop_words

    pairs = load_qa_pairs(Path(path))
    if len(pairs) > MAX_PAIRS:
        raise DataError(f"{path}: {len(pairs)} pairs; import at most {MAX_PAIRS} at a time")
    if not -1 <= threshold <= 1:
        raise DataError(f"threshold must be a cosine similarity between -1 and 1, got {threshold}")
    embedder = ctx.embedder()
    questions = [question for question, _ in pairs]
    labels = agglomerative_clusters(embedder.encode(questions), threshold)
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)

    english, _ = stop_words()
    taken: set[str] = set()
    rows: list[tuple[str, str]] = []
    templates: dict[str, IntentTemplate] = {}
    leftovers: list[tuple[str, str]] = []
    for indices in sorted(groups.values(), key=lambda group: (-len(group), group[0])):
        if len(indices) < min_size:
            leftovers.extend(pairs[i] for i in indices)
            continue
        name = intent_name([questions[i] for i in indices], taken, english)
        answers = [pairs[i][1] for i in indices]
        central = central_index(embedder.encode(answers))
        question_central = central_index(embedder.encode([questions[i] for i in indices]))
        rows.extend((questions[i], name) for i in indices)
        templates[name] = IntentTemplate(
            intent=name,
            title=questions[indices[question_central]].rstrip("?.! "),
            template=answers[central].replace("{", "{{").replace("}", "}}"),
        )
    if not templates:
        raise DataError(
            f"{path}: no group of {min_size}+ similar questions at threshold {threshold}; try a lower --threshold"
        )
    output_dir = Path(output_dir)
    intents_path, templates_path = output_dir / "intents.csv", output_dir / "templates.json"
    write_atomic(intents_path, labeled_csv(rows))
    TemplateBook(intents=templates).save(templates_path)
    unclustered_path = None
    if leftovers:
        unclustered_path = output_dir / "unclustered.csv"
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["question", "answer"])
        writer.writerows(leftovers)
        write_atomic(unclustered_path, buffer.getvalue())
    return ImportReport(
        len(pairs), len(templates), len(rows), len(leftovers), intents_path, templates_path, unclustered_path
    )


def central_index(vectors: np.ndarray) -> int:
    """The row closest to the mean direction: the most typical member of a group."""
    return int(np.argmax(vectors @ vectors.mean(axis=0)))
