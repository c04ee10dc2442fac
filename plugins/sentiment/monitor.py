"""One monitoring run: fetch, de-duplicate, store, score, link, index, aggregate, alert.

Each step is safe to repeat: documents are stored unscored first (one transaction per
source), scored in committed batches, indexed by id (an upsert) and marked; a run that
dies anywhere leaves the rest for the next run, and nothing is scored twice. Bad input
(a dead feed, a malformed file, an empty document, a rule naming an unknown entity)
becomes a message in the run record and the run goes on.
"""

from __future__ import annotations

import bisect
import logging
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from plugins.sentiment.aggregation import (
    Comparison,
    ScoredDocument,
    Subject,
    WindowStats,
    bucket_series,
    compare,
)
from plugins.sentiment.entities import EntityLinker
from plugins.sentiment.model import (
    PLUGIN,
    SentimentScore,
    TopicScore,
    classify_topics,
    load_classifier,
    score_texts,
)
from plugins.sentiment.rules import AlertCandidate, cooled_down, evaluate, rule_subjects
from plugins.sentiment.sources import FetchWindow, RunMessage, fetch, normalise
from plugins.sentiment.store import AlertRecord, RunRecord, ScoreUpdate, SentimentStore
from services.progress import progress_bar
from suite.errors import NotFoundError, SuiteError, one_line

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from services.alerts import Alert
    from services.outbox import AlertOutbox
    from suite.context import SuiteContext

log = logging.getLogger(__name__)
INDEX_NAME = "sentiment-documents"
LINK_CHARS = 5_000  # entity linking reads the start of long documents only
INDEX_BATCH = 500

Scorer = Callable[[Sequence[str]], Sequence[SentimentScore]]
TopicScorer = Callable[[Sequence[str]], Sequence[TopicScore] | None]


def document_text(title: str, text: str) -> str:
    """Headline and body as one text for the models: the headline carries most of the tone."""
    if not title:
        return text
    if not text:
        return title
    return f"{title}{'' if title[-1] in '.!?:' else '.'} {text}"


def evidence_link(doc_id: int, url: str | None) -> str:
    return url or f"/api/sentiment/documents/{doc_id}"


@dataclass
class RunRecorder:
    """Counts and messages of the run in progress; logged as they happen."""

    counts: Counter = field(default_factory=Counter)
    messages: list[RunMessage] = field(default_factory=list)

    def add(self, message: RunMessage) -> None:
        level = {"error": logging.ERROR, "warning": logging.WARNING}.get(message.level, logging.INFO)
        log.log(level, "%s%s", f"[{message.source}] " if message.source else "", message.message)
        self.messages.append(message)

    def error(self, text: str, source: str | None = None) -> None:
        self.add(RunMessage("error", text, source))

    def warning(self, text: str, source: str | None = None) -> None:
        self.add(RunMessage("warning", text, source))

    @property
    def status(self) -> str:
        return "partial" if any(m.level == "error" for m in self.messages) else "ok"

    def dump(self) -> tuple[dict[str, int], list[dict[str, Any]]]:
        return dict(self.counts), [m.to_dict() for m in self.messages]


class Monitor:
    """Runs the monitoring cycle for one :class:`SuiteContext`.

    ``scorer``/``topic_scorer`` default to the active registry models; benchmarks and tests
    may pass their own callables (texts in, one score per text out).
    """

    def __init__(
        self,
        ctx: SuiteContext,
        *,
        scorer: Scorer | None = None,
        topic_scorer: TopicScorer | None = None,
        store: SentimentStore | None = None,
    ) -> None:
        self.ctx = ctx
        self.options = ctx.plugin_options(PLUGIN)
        self.store = store or SentimentStore(ctx.database)
        self.linker = EntityLinker(self.options.watchlist)
        self._default_scorer = scorer is None
        self.scorer: Scorer = scorer or (lambda texts: score_texts(ctx, texts))
        self.topic_scorer: TopicScorer = topic_scorer or (lambda texts: classify_topics(ctx, texts))

    # -- entry points ----------------------------------------------------------------------
    def run_once(self, *, now: datetime | None = None, trigger: str = "manual", dispatch: bool = True) -> RunRecord:
        """Fetch every source, score what is new and evaluate the rules at ``now``."""
        at = _aware(now) if now else datetime.now(UTC)

        def body(rec: RunRecorder, run_id: int) -> None:
            self._ingest(rec, run_id, at, None)
            self._score_pending(rec)
            self._index(rec)
            self._evaluate(rec, run_id, [at], dispatch=dispatch, backfill=False)

        return self._run(trigger, body)

    def backfill(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        dispatch: bool = False,
        fetch_sources: bool = True,
    ) -> RunRecord:
        """Fetch (HTTP sources get ``{since}``/``{until}``), score, then replay the rules over the range.

        Rules are evaluated every ``windows.bucket`` from ``since`` to ``until`` with cool-downs
        in simulated time; the alerts are stored with ``backfill`` set and are only sent when
        ``dispatch`` is true.
        """
        since, until = _aware(since), _aware(until) if until else datetime.now(UTC)
        if since >= until:
            raise SuiteError(
                f"backfill: --since ({since:%Y-%m-%d %H:%M}) must be before --until ({until:%Y-%m-%d %H:%M})"
            )
        step = self.options.windows.bucket
        points = [since + step * i for i in range(1, int((until - since) / step) + 1)]
        if not points or points[-1] < until:
            points.append(until)

        def body(rec: RunRecorder, run_id: int) -> None:
            if fetch_sources:
                self._ingest(rec, run_id, datetime.now(UTC), FetchWindow(since, until))
            self._score_pending(rec)
            self._index(rec)
            self._evaluate(rec, run_id, points, dispatch=dispatch, backfill=True)

        return self._run("backfill", body)

    # -- the run frame -----------------------------------------------------------------------
    def _run(self, trigger: str, body: Callable[[RunRecorder, int], None]) -> RunRecord:
        lock = FileLock(str(self.ctx.plugin_dir(PLUGIN) / "monitor.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise SuiteError("another sentiment monitoring run is in progress; try again when it ends") from None
        try:
            self.store.interrupt_stale_runs()
            run_id = self.store.start_run(trigger)
            rec = RunRecorder()
            try:
                if self._default_scorer:
                    load_classifier(self.ctx)  # no model: fail before fetching anything
                for message in self.options.unknown_rule_entities():
                    rec.warning(message)
                body(rec, run_id)
            except BaseException as exc:
                rec.error(f"run failed: {one_line(exc)}")
                self._finish(run_id, "failed", rec)
                raise
            self._finish(run_id, rec.status, rec)
            return self.store.run(run_id)
        finally:
            lock.release()

    def _finish(self, run_id: int, status: str, rec: RunRecorder) -> None:
        counts, messages = rec.dump()
        try:
            self.store.finish_run(run_id, status, counts, messages)
        except Exception as exc:  # the database itself failing must not hide the run's own error
            log.error("could not record the end of run %s: %s", run_id, one_line(exc))

    # -- steps ---------------------------------------------------------------------------------
    def _ingest(self, rec: RunRecorder, run_id: int, now: datetime, window: FetchWindow | None) -> None:
        from services.preprocessing import normalize_text

        for source in self.options.sources:
            if not source.enabled:
                continue
            try:
                result = fetch(source, window, now=now)
                for message in result.messages:
                    rec.add(message)
                fetched_at = datetime.now(UTC)
                docs = []
                for item in result.items:
                    doc, problem = normalise(item, source.name, fetched_at, normalize_text)
                    if problem:
                        rec.add(problem)
                    if doc:
                        docs.append(doc)
                    else:
                        rec.counts["rejected"] += 1
                stored = self.store.insert_documents(docs, run_id)
            except Exception as exc:  # one broken source must not stop the others
                rec.error(f"source failed: {one_line(exc)}", source.name)
                continue
            rec.counts["fetched"] += len(result.items)
            rec.counts["new"] += stored.inserted
            rec.counts["duplicates"] += stored.duplicates

    def _score_pending(self, rec: RunRecorder) -> None:
        """Score pending documents batch by batch; each batch commits on its own."""
        batch_size = self.options.score_batch_size
        with progress_bar(self.store.count_pending(), "scoring", "doc", leave=False) as bar:
            self._score_batches(rec, batch_size, bar)

    def _score_batches(self, rec: RunRecorder, batch_size: int, bar: Any) -> None:
        while batch := self.store.pending(batch_size):
            bar.update(len(batch))
            texts = [document_text(doc.title, doc.text) for doc in batch]
            scores = list(self.scorer(texts))
            topics = self.topic_scorer(texts)
            linked = self._link(texts)
            updates = [
                ScoreUpdate(
                    id=doc.id,
                    label=score.label,
                    score=float(score.score),
                    probabilities=score.probabilities,
                    topic=topics[i].topic if topics else None,
                    topic_score=topics[i].confidence if topics else None,
                    entities=linked[i],
                )
                for i, (doc, score) in enumerate(zip(batch, scores, strict=True))
            ]
            saved = self.store.save_scores(updates)
            rec.counts["scored"] += saved
            rec.counts["mentions"] += sum(len(u.entities) for u in updates)
            if saved == 0:  # another process holds these rows; leave them to it
                break

    def _link(self, texts: Sequence[str]) -> list[dict[str, str]]:
        entities = self.ctx.preprocessor.entities([text[:LINK_CHARS] for text in texts])
        return [self.linker.link(found) for found in entities]

    def _index(self, rec: RunRecorder) -> None:
        from services.search import Document

        try:
            search = self.ctx.search
            search.ensure_index(index_spec(self.ctx))
            while rows := self.store.unindexed(INDEX_BATCH):
                texts = [document_text(row["title"], row["text"]) for row in rows]
                vectors = self.ctx.embedder().encode(texts) if self.options.index_vectors else [None] * len(rows)
                search.upsert(
                    INDEX_NAME,
                    [
                        Document(str(row["id"]), text, vector, _index_metadata(row))
                        for row, text, vector in zip(rows, texts, vectors, strict=True)
                    ],
                )
                self.store.mark_indexed([row["id"] for row in rows])
                rec.counts["indexed"] += len(rows)
        except Exception as exc:  # search is a convenience: the documents are safe in the database
            rec.error(f"search index: {one_line(exc)}; the documents will be indexed by a later run")

    def _evaluate(
        self, rec: RunRecorder, run_id: int, points: Sequence[datetime], *, dispatch: bool, backfill: bool
    ) -> list[AlertRecord]:
        windows = self.options.windows
        span = windows.current + windows.baseline
        docs = self.store.scored_documents(points[0] - span, points[-1])
        stamps = [doc.published_at for doc in docs]
        topics = sorted({doc.topic for doc in docs if doc.topic})
        rules = [rule for rule in self.options.rules if rule.enabled]
        cooldowns = {rule.name: timedelta(minutes=rule.cooldown_minutes) for rule in rules}
        fired_here: dict[str, datetime] = {}
        raised: list[AlertRecord] = []
        since = self.store.first_published_at()
        with progress_bar(len(points), "backfill", "window", enabled=backfill, leave=False) as bar:
            for now in points:
                bar.update()
                visible = docs[bisect.bisect_right(stamps, now - span) : bisect.bisect_right(stamps, now)]
                candidates = self._candidates(rules, visible, topics, now, since)
                if not candidates:
                    continue
                last = {**self.store.last_alert_times(c.key for c in candidates), **fired_here}
                fire, suppressed = cooled_down(candidates, last, cooldowns, now)
                rec.counts["suppressed"] += len(suppressed)
                for candidate in fire:
                    raised.append(self._raise(rec, candidate, now, run_id, dispatch=dispatch, backfill=backfill))
                    fired_here[candidate.key] = now
        rec.counts["alerts"] += len(raised)
        return raised

    def _candidates(
        self,
        rules: Sequence[Any],
        docs: Sequence[ScoredDocument],
        topics: Sequence[str],
        now: datetime,
        observed_since: datetime | None,
    ) -> list[AlertCandidate]:
        windows = self.options.windows
        comparisons: dict[Subject, Comparison] = {}
        candidates = []
        for rule in rules:
            for subject in rule_subjects(rule, self.linker.names, topics):
                if subject not in comparisons:
                    comparisons[subject] = compare(
                        docs, subject, now, windows.current, windows.baseline, observed_since
                    )
                candidate = evaluate(rule, comparisons[subject], self.options.evidence_documents)
                if candidate:
                    candidates.append(candidate)
        return candidates

    def _raise(
        self,
        rec: RunRecorder,
        candidate: AlertCandidate,
        now: datetime,
        run_id: int,
        *,
        dispatch: bool,
        backfill: bool,
    ) -> AlertRecord:
        evidence = [
            {
                "id": doc.id,
                "title": doc.title,
                "url": evidence_link(doc.id, doc.url),
                "label": doc.label,
                "score": round(doc.score, 4),
                "published_at": doc.published_at.isoformat(),
            }
            for doc in candidate.evidence
        ]
        outbox = self.ctx.alert_outbox if dispatch else None
        record = self.store.add_alert(
            enqueue=partial(_enqueue, outbox) if outbox else None,
            rule=candidate.rule,
            kind=candidate.kind,
            entity=candidate.subject.entity,
            topic=candidate.subject.topic,
            key=candidate.key,
            severity=candidate.severity,
            title=candidate.title,
            message=candidate.message,
            evidence=evidence,
            data=candidate.data,
            created_at=now,
            run_id=run_id,
            backfill=backfill,
            deliveries=[],
        )
        if dispatch:
            rec.counts["queued"] += len(self.ctx.alerts.sinks)
        return record

    def alert_dicts(self, records: Sequence[AlertRecord]) -> list[dict[str, Any]]:
        """Alerts as JSON-ready data, each with its deliveries as the outbox has them now."""
        states = self.ctx.alert_outbox.for_alerts(PLUGIN, [r.id for r in records])
        dicts = []
        for record in records:
            data = record.to_dict()
            found = states.get(str(record.id))
            if found:  # alerts from before the outbox keep the dispatcher's records
                data["deliveries"] = [d.summary() for d in found]
            dicts.append(data)
        return dicts

    # -- read side (reports, HTTP) ------------------------------------------------------------
    def resolve_entity(self, name: str) -> str:
        resolved = self.linker.resolve(name)
        if resolved is None:
            known = ", ".join(self.linker.names) or "empty"
            raise NotFoundError(f"'{name}' is not on the watchlist ({known})")
        return resolved

    def comparisons(self, now: datetime | None = None, by: str = "entity") -> list[Comparison]:
        """Current window against baseline for every watchlist entity (or every topic)."""
        at = _aware(now) if now else datetime.now(UTC)
        windows = self.options.windows
        docs = self.store.scored_documents(at - windows.current - windows.baseline, at)
        since = self.store.first_published_at()
        if by == "topic":
            subjects = [Subject(topic=t) for t in sorted({d.topic for d in docs if d.topic})]
        else:
            subjects = [Subject(entity=name) for name in self.linker.names]
        return [compare(docs, subject, at, windows.current, windows.baseline, since) for subject in subjects]

    def topic_comparisons(self, entity: str, now: datetime | None = None) -> list[Comparison]:
        """One entity's current window against baseline, topic by topic."""
        at = _aware(now) if now else datetime.now(UTC)
        windows = self.options.windows
        docs = self.store.scored_documents(at - windows.current - windows.baseline, at, entity=entity)
        topics = sorted({d.topic for d in docs if d.topic})
        since = self.store.first_published_at()
        return [compare(docs, Subject(entity, t), at, windows.current, windows.baseline, since) for t in topics]

    def series(
        self, entity: str, *, start: datetime, end: datetime, bucket: timedelta | None = None
    ) -> list[WindowStats]:
        name = self.resolve_entity(entity)
        docs = self.store.scored_documents(_aware(start), _aware(end), entity=name)
        return bucket_series(docs, _aware(start), _aware(end), bucket or self.options.windows.bucket)


def _enqueue(outbox: AlertOutbox, conn: Connection, record: AlertRecord) -> None:
    """Queue the alert for every sink in the transaction that stores it; the delivery worker sends it."""
    outbox.enqueue(conn, to_alert(record), ref=record.id)


def to_alert(record: AlertRecord) -> Alert:
    """The alert the sinks receive for a stored sentiment alert."""
    from services.alerts import Alert

    return Alert(
        key=record.key,
        title=record.title,
        message=record.message,
        severity=record.severity,
        source=PLUGIN,
        evidence=record.evidence,
        created_at=record.created_at,
        data={
            "alert_id": record.id,
            "rule": record.rule,
            "kind": record.kind,
            "entity": record.entity,
            "topic": record.topic,
            "link": f"/api/sentiment/alerts/{record.id}",
        },
    )


_monitors: weakref.WeakKeyDictionary[SuiteContext, Monitor] = weakref.WeakKeyDictionary()
_monitors_lock = threading.Lock()


def monitor_for(ctx: SuiteContext) -> Monitor:
    """The context's shared :class:`Monitor` (one store and linker per process)."""
    with _monitors_lock:
        if ctx not in _monitors:
            _monitors[ctx] = Monitor(ctx)
        return _monitors[ctx]


def index_spec(ctx: SuiteContext) -> Any:
    from services.search import IndexSpec

    options = ctx.plugin_options(PLUGIN)
    dim = ctx.embedder().dimension if options.index_vectors else None
    return IndexSpec(INDEX_NAME, vector_dim=dim, description="news and posts scored by the sentiment plugin")


def _index_metadata(row: dict[str, Any]) -> dict[str, Any]:
    published = row["published_at"]
    return {
        "source": row["source"],
        "title": row["title"],
        "url": row["url"],
        "label": row["label"],
        "score": row["score"],
        "topic": row["topic"],
        "entities": row["entities"],
        "published_at": published.isoformat(),
        "published_ts": published.timestamp(),
    }


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
