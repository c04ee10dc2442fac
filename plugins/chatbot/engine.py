"""The answering engine shared by the CLI, the HTTP API and the web page.

One message goes through: input checks -> the intent classifier (one call) -> a template
with its slots filled (asking for a missing one), a clarifying question when the two best
intents are close, or else hybrid retrieval over the knowledge base (one embedding, one
search) -> a hand-off to a person when retrieval is weak too. The conversation's state
and the exchange are saved together.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from plugins.chatbot.compose import Citation, compose_answer, content_stems
from plugins.chatbot.data import labeled_csv, write_atomic
from plugins.chatbot.guard import InputCheck, check_message
from plugins.chatbot.knowledge import KnowledgeBase
from plugins.chatbot.model import ActiveIntentModel, IntentModel, IntentPrediction
from plugins.chatbot.options import PLUGIN, ChatbotOptions, DataPaths
from plugins.chatbot.slots import slot_labels, slots_from_entities
from plugins.chatbot.store import ConversationStore, Exchange, SessionState
from plugins.chatbot.templates import TemplateBook, load_templates
from suite.errors import DataError, ModelError, NotFoundError, one_line

if TYPE_CHECKING:
    from suite.context import SuiteContext

log = logging.getLogger(__name__)
Source = Literal["template", "retrieval", "clarify", "out_of_scope", "handoff", "refusal"]

HANDOFF_REPLY = (
    "I'm not sure I can answer that correctly, so I'm passing you to one of our advisers. "
    "They can see this conversation and will reply here."
)
REPHRASE_REPLY = "Sorry I misunderstood. Could you tell me in a few words what you need?"
RETRY_PREFIX = "Sorry, I didn't catch that. "
WORD = re.compile(r"[a-z0-9]+")
FIRST = {"1", "first", "former"}  # "one" alone too, but not in "the second one"
SECOND = {"2", "second", "latter"}
NEITHER = {"neither", "none", "nope", "no", "nothing", "other", "else"}
MAX_SLOT_ATTEMPTS = 2


@dataclass
class ChatAnswer:
    """What the bot says and why: the source, the prediction behind it, citations, hand-off reason."""

    answer: str
    source: Source
    conversation_id: str = ""
    exchange_id: int | None = None
    intent: str | None = None
    confidence: float | None = None  # 1.0: the conversation fixed the intent (a clarification, a slot)
    top2: list[list[Any]] = field(default_factory=list)  # [[intent, probability], ...]
    citations: list[Citation] = field(default_factory=list)
    handoff_reason: str | None = None
    out_of_scope_reason: str | None = None  # why no intent answered (the message looked out of scope)
    awaiting_slot: str | None = None  # the answer asks for this slot
    clarify: list[str] = field(default_factory=list)  # the intents a clarifying question names
    slots: dict[str, str] = field(default_factory=dict)
    model_version: str | None = None
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    confidence: float
    margin: float
    pair: float
    retrieval: float


class Chatbot:
    """Answers customer messages; cheap to create (models and data are cached per process)."""

    def __init__(self, ctx: SuiteContext, options: ChatbotOptions | None = None) -> None:
        self.ctx = ctx
        self.options: ChatbotOptions = options or ctx.plugin_options(PLUGIN)
        self.paths = DataPaths.from_options(self.options)
        self.knowledge = KnowledgeBase(ctx, self.options.index, top_k=self.options.top_k)
        self._active = ActiveIntentModel(
            ctx, quantize=self.options.quantize, out_of_scope_method=self.options.out_of_scope_method
        )

    @cached_property
    def store(self) -> ConversationStore:
        return ConversationStore(self.ctx.database, ttl_minutes=self.options.session_ttl_minutes)

    @property
    def templates(self) -> TemplateBook:
        return load_templates(self.paths.templates)

    def model(self) -> IntentModel:
        return self._active.get()

    def thresholds(self, model: IntentModel) -> Thresholds:
        """Configured values win; then the calibration saved with the model (the retrieval one
        with the index, since it depends on what is indexed); then the fallbacks."""
        options, calibration = self.options, model.calibration
        indexed = self.knowledge.calibration() or {}
        return Thresholds(
            confidence=_first(
                options.confidence_threshold,
                calibration and calibration.confidence_threshold,
                options.fallback_confidence_threshold,
            ),
            margin=_first(
                options.margin_threshold,
                calibration and calibration.margin_threshold,
                options.fallback_margin_threshold,
            ),
            pair=_first(
                options.pair_threshold, calibration and calibration.pair_threshold, options.fallback_pair_threshold
            ),
            retrieval=_first(
                options.retrieval_threshold, indexed.get("threshold"), options.fallback_retrieval_threshold
            ),
        )

    def warm_up(self) -> None:
        """Load everything the first answer would (classifier, spaCy, embedder, tables) ahead of time."""
        model = self.model()
        model.classifier.prepare()  # traced now rather than on the second request
        model.predict("hello")
        self._check("hello")  # loads the language identifier
        self.templates  # noqa: B018 - parses the templates file
        self.ctx.preprocessor.entities(["send $5 tomorrow"])
        self.knowledge.snapshot  # noqa: B018 - reads the knowledge snapshot
        self.ctx.embedder().encode_one("hello")
        self.store  # noqa: B018 - creates the tables

    # -- answering -----------------------------------------------------------------------
    def answer(self, message: str, conversation_id: str | None = None) -> ChatAnswer:
        """Answer one message; ``conversation_id`` continues a session (a new one is made when None)."""
        started = time.perf_counter()
        check = self._check(message)
        state = self.store.load_session(conversation_id)
        reply = self._respond(check.text, state) if check.ok else ChatAnswer(check.reply or "", "refusal")
        logged = check.text if check.reason != "binary" else f"[binary data, {len(message)} characters]"
        return self._finish(logged, state, reply, started)

    def answer_once(self, message: str) -> ChatAnswer:
        """Answer ``message`` as the first of a new conversation, without saving anything (evaluation)."""
        started = time.perf_counter()
        check = self._check(message)
        state = SessionState("evaluation")
        reply = self._respond(check.text, state) if check.ok else ChatAnswer(check.reply or "", "refusal")
        reply.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return reply

    def _check(self, message: str) -> InputCheck:
        return check_message(
            message,
            max_chars=self.options.max_chars,
            check_language=self.options.check_language,
            language_confidence=self.options.language_confidence,
            cache_dir=self.ctx.settings.data_dir / "cache",
        )

    def _respond(self, text: str, state: SessionState) -> ChatAnswer:
        model = self.model()
        book = self.templates
        limits = self.thresholds(model)
        prediction = model.predict(text)
        pending, state.pending = state.pending, None
        answer = self._follow_up(text, state, pending, prediction, book, limits) if pending else None
        answer = answer or self._route(text, state, prediction, book, limits)
        if answer.intent is None and answer.source != "refusal":
            answer.intent, answer.confidence = prediction.intent, round(prediction.confidence, 4)
        answer.top2 = prediction.top2()
        answer.model_version = model.version.ref
        return answer

    def _route(
        self,
        text: str,
        state: SessionState,
        prediction: IntentPrediction,
        book: TemplateBook,
        limits: Thresholds,
    ) -> ChatAnswer:
        outside = self._out_of_scope_reason(prediction, limits)
        if outside:
            return self._out_of_scope_answer(text, limits, outside)
        runner_up = prediction.runner_up
        if (
            runner_up is not None
            and runner_up[0] != self.options.out_of_scope_label
            and prediction.margin < limits.margin
            and prediction.confidence + runner_up[1] >= limits.pair
        ):
            first, second = prediction.intent, runner_up[0]
            state.pending = {"clarify": [first, second], "message": text}
            question = f"Just to be sure, which do you mean: (1) {book.title(first)}, or (2) {book.title(second)}?"
            return ChatAnswer(question, "clarify", clarify=[first, second])
        return self._intent_answer(prediction.intent, text, state, book, limits, prediction)

    def _out_of_scope_reason(self, prediction: IntentPrediction, limits: Thresholds) -> str | None:
        """Why no intent should answer the message, or None when one should."""
        if prediction.intent == self.options.out_of_scope_label:
            return "the classifier's out-of-scope class"
        if prediction.out_of_scope:
            return f"out-of-scope score {prediction.out_of_scope_score:.3g} is above the model's threshold"
        if prediction.confidence < limits.confidence:
            return f"intent confidence {prediction.confidence:.2f} is below {limits.confidence:.2f}"
        return None

    def _out_of_scope_answer(self, text: str, limits: Thresholds, why: str) -> ChatAnswer:
        """The knowledge base's answer if a passage clears its threshold, else the configured reply or a person."""
        answer = self._retrieval_answer(text, limits, why)
        if answer.source != "retrieval" and self.options.out_of_scope_action == "answer":
            answer = ChatAnswer(self.options.out_of_scope_reply, "out_of_scope")
        answer.out_of_scope_reason = why
        return answer

    def _follow_up(
        self,
        text: str,
        state: SessionState,
        pending: dict[str, Any],
        prediction: IntentPrediction,
        book: TemplateBook,
        limits: Thresholds,
    ) -> ChatAnswer | None:
        """The reply to what the bot asked last turn; None when the message starts something new."""
        if "clarify" in pending:
            choice = resolve_choice(text, pending["clarify"], prediction, book)
            if choice == "":
                return ChatAnswer(REPHRASE_REPLY, "clarify")
            if choice:
                context = f"{pending.get('message', '')} {text}"  # the slots may be in the first message
                return self._intent_answer(choice, context, state, book, limits, prediction, chosen=True)
            return None
        slot, intent = pending.get("slot"), state.last_intent
        if not slot or not intent:
            return None
        template = book.intents.get(intent)
        found = self._slots(text, book, [*(template.slots if template else []), slot], slot)
        if found:
            state.slots.update(found)
            return self._intent_answer(intent, "", state, book, limits, prediction, chosen=True)
        switching = prediction.confidence >= limits.confidence and prediction.intent != intent
        attempts = int(pending.get("attempts", 1))
        if switching or attempts >= MAX_SLOT_ATTEMPTS:
            return None
        state.pending = {"slot": slot, "attempts": attempts + 1}
        return ChatAnswer(RETRY_PREFIX + book.prompt(intent, slot), "template", intent=intent, awaiting_slot=slot)

    def _intent_answer(
        self,
        intent: str,
        text: str,
        state: SessionState,
        book: TemplateBook,
        limits: Thresholds,
        prediction: IntentPrediction,
        *,
        chosen: bool = False,
    ) -> ChatAnswer:
        """The intent's template with its slots; ``chosen``: the customer confirmed the intent."""
        confidence = 1.0 if chosen else round(prediction.probability(intent), 4)
        template = book.get(intent)
        if template is None or not template.template:
            answer = self._retrieval_answer(
                text or intent.replace("_", " "), limits, f"intent '{intent}' has no template"
            )
            answer.intent, answer.confidence = intent, confidence
            return answer
        if state.last_intent != intent:
            state.slots = {}  # an amount or a date of another request must not leak into this one
        state.last_intent = intent
        if template.slots and text:
            state.slots.update(self._slots(text, book, template.slots))
        base = {"intent": intent, "confidence": confidence}
        if template.handoff:
            reason = f"intent '{intent}' is always handed to a person"
            return ChatAnswer(template.render(state.slots), "handoff", handoff_reason=reason, **base)
        missing = template.missing(state.slots)
        if missing:
            state.pending = {"slot": missing[0], "attempts": 1}
            return ChatAnswer(book.prompt(intent, missing[0]), "template", awaiting_slot=missing[0], **base)
        return ChatAnswer(template.render(state.slots), "template", **base)

    def _slots(self, text: str, book: TemplateBook, slots: list[str], awaiting: str | None = None) -> dict[str, str]:
        """The values of ``slots`` in ``text``; asking only for their labels lets most messages skip spaCy."""
        labels = slot_labels(book.entity_slots, slots, awaiting)
        entities = self.ctx.preprocessor.entities([text], labels=labels)[0]
        return slots_from_entities(entities, book.entity_slots, awaiting=awaiting, text=text)

    def _retrieval_answer(self, text: str, limits: Thresholds, why: str) -> ChatAnswer:
        try:
            passages = self.knowledge.retrieve(text)
        except NotFoundError:
            return ChatAnswer(HANDOFF_REPLY, "handoff", handoff_reason=f"{why}; the knowledge base is not indexed yet")
        except Exception as exc:  # a search outage must not stop the bot: a person takes over
            log.warning("chatbot knowledge base search failed: %s", one_line(exc))
            return ChatAnswer(HANDOFF_REPLY, "handoff", handoff_reason=f"{why}; knowledge base unavailable")
        relevant = [p for p in passages if p.similarity >= limits.retrieval]
        if not relevant:
            best = max((p.similarity for p in passages), default=None)
            weak = "no knowledge-base passage" if best is None else f"best knowledge-base match {best:.2f}"
            reason = f"{why}, and {weak} is below {limits.retrieval:.2f}"
            return ChatAnswer(HANDOFF_REPLY, "handoff", handoff_reason=reason)
        text, citations = compose_answer(
            text, relevant, max_chars=self.options.answer_max_chars, max_citations=self.options.max_citations
        )
        return ChatAnswer(text, "retrieval", citations=citations)

    def _finish(self, message: str, state: SessionState, answer: ChatAnswer, started: float) -> ChatAnswer:
        answer.conversation_id = state.id
        answer.slots = dict(state.slots)
        exchange = Exchange(
            session_id=state.id,
            message=message,
            answer=answer.answer,
            source=answer.source,
            intent=answer.intent,
            confidence=answer.confidence,
            top2=answer.top2 or None,
            citations=[c.to_dict() for c in answer.citations] or None,
            handoff_reason=answer.handoff_reason,
            model_version=answer.model_version,
        )
        answer.exchange_id = self.store.record_turn(state, exchange)
        answer.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return answer

    # -- intents and feedback ------------------------------------------------------------
    def intent_labels(self) -> list[str]:
        """The intents the active model knows, else those with templates."""
        try:  # the out-of-scope class, where the model has one, is not an intent
            return [label for label in self.model().labels if label != self.options.out_of_scope_label]
        except ModelError:
            return sorted(self.templates.intents)

    def intents(self) -> list[dict[str, Any]]:
        book = self.templates
        return [
            {
                "name": name,
                "title": book.title(name),
                "slots": template.slots if (template := book.get(name)) else [],
                "has_template": bool(template and template.template),
                "handoff": bool(template and template.handoff),
            }
            for name in self.intent_labels()
        ]

    def feedback(self, exchange_id: int, rating: str | None, corrected_intent: str | None = None) -> dict[str, Any]:
        """Record a rating (up|down) and/or the intent the message really had."""
        if corrected_intent is not None:
            known = self.intent_labels()
            if corrected_intent not in known:
                shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
                raise DataError(f"unknown intent '{corrected_intent}' (known: {shown})")
        return self.store.record_feedback(exchange_id, rating, corrected_intent)

    def export_feedback(self, path: Path, *, include_confirmed: bool = False) -> int:
        """Write corrected exchanges as ``text,label`` CSV (the training format); return the row count."""
        rows = self.store.training_rows(include_confirmed=include_confirmed)
        write_atomic(Path(path), labeled_csv(rows))
        return len(rows)


def resolve_choice(text: str, options: list[str], prediction: IntentPrediction, book: TemplateBook) -> str | None:
    """Which option a reply to a clarifying question picks; "" for neither, None if it is no answer."""
    words = set(WORD.findall(text.lower()))
    if words in ({"one"}, {"two"}):
        words = {"1"} if words == {"one"} else {"2"}
    if words & FIRST and not words & SECOND:
        return options[0]
    if words & SECOND and not words & FIRST:
        return options[1]
    said = content_stems(text)
    overlaps = [len(said & content_stems(f"{book.title(option)} {option.replace('_', ' ')}")) for option in options]
    if max(overlaps) > 0 and overlaps.count(max(overlaps)) == 1:
        return options[overlaps.index(max(overlaps))]
    if words & NEITHER:
        return ""
    return prediction.intent if prediction.intent in options else None


def _first(*values: float | None) -> float:
    return float(next(value for value in values if value is not None and value is not False))
