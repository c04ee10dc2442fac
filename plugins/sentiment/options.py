"""The ``[plugins.sentiment]`` options: watchlist, sources, windows, alert rules, training.

Every default works with the shipped sample data, so ``suite sentiment train`` followed by
``suite monitor run-once`` ingests the sample feeds and raises the sample alerts.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

Severity = Literal["info", "warning", "critical"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)\s*$", re.I)
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "w": 10080}


def parse_duration(value: Any) -> Any:
    """``"30m"``, ``"6h"``, ``"7d"``, ``"2w"`` or a number of minutes; anything else goes to pydantic."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(minutes=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(minutes=float(match.group(1)) * _UNIT_MINUTES[match.group(2)[0].lower()])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class WatchEntity(Strict):
    """A company on the watchlist; ``name`` is what alerts and reports call it."""

    name: str = Field(min_length=1)
    ticker: str | None = Field(None, pattern=r"^\$?[A-Za-z][A-Za-z0-9.]{0,9}$")
    aliases: list[str] = Field(default_factory=list)

    @field_validator("ticker")
    @classmethod
    def _bare_ticker(cls, value: str | None) -> str | None:
        return value.lstrip("$").upper() if value else value


class SourceConfig(Strict):
    """Where documents come from. ``url_or_path`` may start with ``sample:`` for the shipped data."""

    name: str = Field(min_length=1)
    kind: Literal["rss", "file", "http"]
    url_or_path: str = Field(min_length=1)
    enabled: bool = True
    timeout: float = Field(10.0, gt=0, description="seconds, for rss/http URLs")
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(
        default_factory=dict, description="http query parameters; '{since}'/'{until}' are filled in backfills"
    )
    items_key: str | None = Field(None, description="http: the key of the item list in the JSON response")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="file/http: canonical field -> source field (id, title, text, url, published)",
    )
    replay: bool = Field(False, description="shift timestamps so the newest item is 'now' (demo data)")


class WindowConfig(Strict):
    current: Duration = Field(timedelta(hours=6), description="the window being watched")
    baseline: Duration = Field(timedelta(days=7), description="the history it is compared with, just before it")
    bucket: Duration = Field(timedelta(hours=1), description="bucket of the report series and charts")

    @model_validator(mode="after")
    def _positive(self) -> WindowConfig:
        for name in ("current", "baseline", "bucket"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"windows.{name} must be positive")
        if self.baseline < self.current:
            raise ValueError("windows.baseline must be at least as long as windows.current")
        return self


class ThresholdParams(Strict):
    negative_share: float = Field(0.5, ge=0, le=1, description="fires when the share is above this")
    min_documents: int = Field(5, ge=1)


class SpikeParams(Strict):
    """``volume``: a z-score against the baseline's per-window volumes. ``negative_share``: how
    surprising the current window's negatives are given the baseline's rate and the window's size
    (a beta-binomial tail probability, expressed as the z-score of the same one-sided tail), so a
    few documents cannot fake a spike."""

    metric: Literal["volume", "negative_share"] = "volume"
    z: float = Field(3.0, gt=0, description="how many standard deviations (or the same tail probability)")
    min_documents: int = Field(5, ge=1)
    min_std: float | None = Field(None, gt=0, description="volume only: floor of the baseline spread (1 document)")
    min_baseline_windows: int = Field(3, ge=1, description="baseline windows with documents needed")

    @model_validator(mode="after")
    def _min_std_for_volume(self) -> SpikeParams:
        if self.min_std is not None and self.metric != "volume":
            raise ValueError("min_std applies to the volume metric only")
        return self


class FlipParams(Strict):
    direction: Literal["any", "negative", "positive"] = "negative"
    min_magnitude: float = Field(0.2, gt=0, le=1, description="|mean score| needed on both sides of the flip")
    min_documents: int = Field(3, ge=1)
    z: float = Field(3.0, ge=0, description="the change over its standard error (Welch), so noise is no flip")


RULE_PARAMS: dict[str, type[Strict]] = {
    "threshold": ThresholdParams,
    "spike": SpikeParams,
    "flip": FlipParams,
}


class RuleConfig(Strict):
    """One alert rule. ``entity``: a watchlist name, ``"*"`` (each entity) or ``None`` (all documents).

    ``topic`` narrows the documents to one topic, or ``"*"`` evaluates each topic separately.
    """

    name: str = Field(min_length=1, pattern=r"^[\w.-]+$")
    kind: Literal["threshold", "spike", "flip"]
    entity: str | None = "*"
    topic: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="kind-specific, see *Params")
    severity: Severity = "warning"
    cooldown_minutes: float = Field(360, ge=0)
    enabled: bool = True
    _typed: ThresholdParams | SpikeParams | FlipParams = PrivateAttr()

    @model_validator(mode="after")
    def _typed_params(self) -> RuleConfig:
        try:
            self._typed = RULE_PARAMS[self.kind].model_validate(self.params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"rule '{self.name}' params.{where}: {first['msg']}") from None
        self.params = self._typed.model_dump()
        return self

    @property
    def settings(self) -> ThresholdParams | SpikeParams | FlipParams:
        """The params, validated against the rule's kind."""
        return self._typed


class TrainingOptions(Strict):
    """Defaults sized for the shipped sample (a few hundred sentences, well under a minute)."""

    data: str = Field("sample:financial_sentences.csv", description="CSV/JSONL with text,label[,topic]")
    topic: bool = Field(True, description="also train the topic classifier when the data has a topic column")
    epochs: float = Field(3.0, gt=0)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    max_length: int = Field(64, ge=8)
    max_steps: int | None = Field(None, ge=1)
    min_steps: int = Field(0, ge=0, description="at least this many steps (0: the epochs decide)")
    validation_fraction: float = Field(0.15, ge=0, lt=1)
    seed: int = 42


def _default_watchlist() -> list[WatchEntity]:
    return [
        WatchEntity(name="Northwind Bank", ticker="NWBK", aliases=["Northwind", "Northwind Bank plc"]),
        WatchEntity(name="Contoso Motors", ticker="CTSM", aliases=["Contoso", "Contoso Motors Inc."]),
        WatchEntity(name="Fabrikam Energy", ticker="FBKM", aliases=["Fabrikam", "Fabrikam Energy Corp."]),
        WatchEntity(name="Litware Systems", ticker="LTWR", aliases=["Litware", "Litware Systems Inc."]),
    ]


def _default_sources() -> list[SourceConfig]:
    return [
        SourceConfig(name="sample-wire", kind="file", url_or_path="sample:news.jsonl", replay=True),
        SourceConfig(name="sample-feed", kind="rss", url_or_path="sample:feed.xml", replay=True),
    ]


def _default_rules() -> list[RuleConfig]:
    return [
        RuleConfig(name="negative-share", kind="threshold", params={"negative_share": 0.5, "min_documents": 5}),
        RuleConfig(
            name="volume-spike",
            kind="spike",
            severity="info",
            params={"metric": "volume", "z": 3.0, "min_documents": 5},
        ),
        RuleConfig(
            name="negative-spike",
            kind="spike",
            severity="critical",
            params={"metric": "negative_share", "z": 3.0, "min_documents": 5},
        ),
        RuleConfig(
            name="turned-negative",
            kind="flip",
            severity="critical",
            params={"direction": "negative", "min_magnitude": 0.2, "min_documents": 4},
        ),
    ]


class SentimentOptions(Strict):
    watchlist: list[WatchEntity] = Field(default_factory=_default_watchlist)
    sources: list[SourceConfig] = Field(default_factory=_default_sources)
    windows: WindowConfig = Field(default_factory=WindowConfig)
    rules: list[RuleConfig] = Field(default_factory=_default_rules)
    schedule_minutes: int = Field(15, ge=0, description="interval of the scheduled job; 0 turns it off")
    training: TrainingOptions = Field(default_factory=TrainingOptions)
    inference_batch_size: int = Field(64, ge=1, description="texts per forward pass when scoring")
    score_batch_size: int = Field(512, ge=1, description="documents scored and committed together")
    max_length: int = Field(128, ge=8, description="tokens per document when scoring")
    index_vectors: bool = Field(False, description="also embed documents for vector search (slower ingest)")
    evidence_documents: int = Field(5, ge=1, description="documents linked as evidence per alert")

    @model_validator(mode="after")
    def _unique_names(self) -> SentimentOptions:
        for what, names in (
            ("watchlist", [e.name for e in self.watchlist]),
            ("sources", [s.name for s in self.sources]),
            ("rules", [r.name for r in self.rules]),
        ):
            seen = {n for n in names if names.count(n) > 1}
            if seen:
                raise ValueError(f"{what}: duplicate name {sorted(seen)[0]!r}")
        return self

    def entity(self, name: str) -> WatchEntity | None:
        return next((e for e in self.watchlist if e.name == name), None)

    def unknown_rule_entities(self) -> list[str]:
        """One message per rule naming an entity that is not on the watchlist."""
        known = {e.name for e in self.watchlist}
        return [
            f"rule '{rule.name}': unknown entity '{rule.entity}' "
            f"(watchlist: {', '.join(sorted(known)) or 'empty'}) - rule skipped"
            for rule in self.rules
            if rule.entity not in (None, "*") and rule.entity not in known
        ]
