"""The chatbot's options (``[plugins.chatbot]``) and where its shipped sample data lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PLUGIN = "chatbot"
INTENT_TASK = "intent"
SAMPLE_DIR = Path(__file__).parent / "data"


class ChatbotOptions(BaseModel):
    """Every default runs on a laptop with the sample data shipped in ``plugins/chatbot/data``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    # -- data ---------------------------------------------------------------------------
    data: str | None = Field(None, description="intent training data (CSV or JSONL with text,label); None: sample")
    extra_data: list[str] = Field(default_factory=list, description="more labelled files, e.g. exported feedback")
    templates: str | None = Field(None, description="answer templates JSON; None: sample")
    knowledge: list[str] | None = Field(None, description="FAQ CSV, Markdown or text files/folders; None: sample")
    out_of_scope: str | None = Field(None, description="messages no intent covers (one per line); None: sample")
    retrieval_eval: str | None = Field(None, description="CSV query,doc (empty doc: not in the KB); None: sample")
    out_of_scope_label: str = Field(
        "out_of_scope", description="rows with this label (or oos, none, out-of-scope) calibrate, never train"
    )
    out_of_scope_class: bool = Field(
        False, description="also train the out-of-scope examples as one more class (most are held out to calibrate)"
    )
    synthetic_outliers: float = Field(
        0.0,
        ge=0,
        description="train the out-of-scope class on mixtures of two intents' features, with this weight against "
        "the intents' loss; needs no out-of-scope example (0: off)",
    )

    # -- training (defaults sized for the sample; the trainer's config fills the rest) --
    epochs: float = Field(8.0, gt=0)
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(64, ge=8)
    max_steps: int | None = Field(None, ge=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    refit: Literal["auto", "always", "never"] = Field(
        "auto",
        description="after calibrating, train once more on every example (the held-out ones too) for as many "
        "epochs as the first run (then without early stopping) found best; 'auto': below 50 examples per "
        "intent, where the held-out share is a big loss",
    )

    # -- calibration: None means "use the value calibrated on validation data" ----------
    target_precision: float = Field(0.9, gt=0, le=1, description="precision of answered intents on validation")
    max_clarify_rate: float = Field(0.05, ge=0, le=1, description="largest share of in-scope messages to clarify")
    false_rejection_rate: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="share of held-out in-scope messages the out-of-scope threshold turns away; the confidence "
        "and pair thresholds may each turn away at most as many",
    )
    out_of_scope_method: (
        Literal["auto", "knn", "knn_examples", "mahalanobis", "max_logit", "energy", "msp", "outlier_class"] | None
    ) = Field(
        None,
        description="out-of-scope score; at training None is 'auto' (best AUROC on out-of-scope examples if any, "
        "else knn); at answer time None is the one saved with the model; 'knn_examples' needs out-of-scope "
        "examples, 'outlier_class' synthetic_outliers",
    )
    confidence_threshold: float | None = Field(None, ge=0, le=1)
    margin_threshold: float | None = Field(None, ge=0, le=1)
    pair_threshold: float | None = Field(None, ge=0, le=1)
    retrieval_threshold: float | None = Field(None, ge=-1, le=1)
    # Used only when the data cannot calibrate (too few validation or eval examples).
    fallback_confidence_threshold: float = Field(0.5, ge=0, le=1)
    fallback_margin_threshold: float = Field(0.1, ge=0, le=1)
    fallback_pair_threshold: float = Field(0.8, ge=0, le=1)
    fallback_retrieval_threshold: float = Field(
        0.35, ge=-1, le=1, description="cosine of query and best passage; ~0.35 separates topics for MiniLM"
    )

    # -- answering ----------------------------------------------------------------------
    index: str = Field("chatbot-kb", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    top_k: int = Field(5, ge=1, le=50, description="passages retrieved per question")
    max_citations: int = Field(2, ge=1, le=10)
    answer_max_chars: int = Field(600, ge=80)
    passage_max_chars: int = Field(1200, ge=200, description="longer document sections are split")
    max_chars: int = Field(1000, ge=10, description="longer messages are rejected")
    out_of_scope_action: Literal["answer", "handoff"] = Field(
        "answer", description="what an out-of-scope message no passage answers gets: out_of_scope_reply or a person"
    )
    out_of_scope_reply: str = Field(
        "Sorry, that is not something I can help with here. I can answer questions about your account, cards, "
        "payments and transfers; or ask to speak to an adviser.",
        description="the polite answer to an out-of-scope message",
    )
    check_language: bool = True
    language_confidence: float = Field(
        0.7, gt=0, le=1, description="refuse a message as not English only when the identifier is this sure"
    )
    quantize: bool = Field(False, description="int8 classifier on CPU: 2-3x faster, may differ on near ties")
    session_ttl_minutes: float = Field(30.0, gt=0)


def sample_path(name: str) -> Path:
    return SAMPLE_DIR / name


@dataclass(frozen=True)
class DataPaths:
    """The data files in force: the configured ones, else the shipped samples.

    The sample out-of-scope messages and retrieval queries are about the sample intents
    and knowledge base, so they are only used together with those.
    """

    data: Path
    templates: Path
    knowledge: list[Path]
    out_of_scope: Path | None
    retrieval_eval: Path | None

    @classmethod
    def from_options(cls, options: ChatbotOptions) -> DataPaths:
        def configured(value: str | None) -> Path | None:
            return Path(value).expanduser() if value else None

        data = configured(options.data)
        knowledge = [Path(p).expanduser() for p in options.knowledge] if options.knowledge is not None else None
        return cls(
            data=data or sample_path("intents.csv"),
            templates=configured(options.templates) or sample_path("templates.json"),
            knowledge=knowledge if knowledge is not None else [sample_path("knowledge")],
            out_of_scope=configured(options.out_of_scope) or (None if data else sample_path("out_of_scope.txt")),
            retrieval_eval=configured(options.retrieval_eval)
            or (None if knowledge is not None else sample_path("retrieval_eval.csv")),
        )
