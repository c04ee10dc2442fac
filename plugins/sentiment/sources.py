"""Fetching documents from RSS/Atom feeds, JSONL/CSV/JSON/text files or folders, and HTTP JSON endpoints.

A fetcher never raises for bad input: a dead feed, a malformed file or a bad item becomes a
:class:`RunMessage` and the fetcher returns whatever it could read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from plugins.sentiment.options import SourceConfig
from plugins.sentiment.store import NewDocument

SAMPLE_PREFIX = "sample:"
DATA_DIR = Path(__file__).parent / "data"
FILE_SUFFIXES = {".jsonl", ".json", ".csv", ".txt"}
MAX_DOCUMENT_CHARS = 100_000

# Source field names tried in order for each canonical field; ``SourceConfig.fields`` overrides them.
FIELD_CANDIDATES: dict[str, tuple[str, ...]] = {
    "id": ("id", "guid", "uuid", "external_id"),
    "title": ("title", "headline"),
    "text": ("text", "body", "content", "summary", "description"),
    "url": ("url", "link"),
    "published": ("published_at", "published", "date", "timestamp", "time", "created_at"),
}
ITEM_KEYS = ("items", "data", "results", "articles", "documents", "entries")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class RunMessage:
    """One line in a run record: what went wrong (or was worth saying), and where."""

    level: str  # "error" | "warning" | "info"
    message: str
    source: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"level": self.level, "source": self.source, "message": self.message}


@dataclass(frozen=True)
class RawItem:
    external_id: str | None
    url: str | None
    title: str
    text: str
    published_at: datetime | None
    origin: str = ""  # file and line, or feed entry, for messages


@dataclass
class FetchResult:
    items: list[RawItem] = field(default_factory=list)
    messages: list[RunMessage] = field(default_factory=list)


@dataclass(frozen=True)
class FetchWindow:
    """The range a backfill asks for; HTTP sources can pass it on as ``{since}``/``{until}``."""

    since: datetime | None = None
    until: datetime | None = None


def resolve_path(value: str) -> Path:
    """``sample:news.jsonl`` is the shipped sample data; anything else a path (``~`` expanded)."""
    if value.startswith(SAMPLE_PREFIX):
        return DATA_DIR / value[len(SAMPLE_PREFIX) :]
    return Path(value).expanduser()


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


# -- timestamps -----------------------------------------------------------------------------
def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601, RFC 2822, or epoch seconds/milliseconds; naive times are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    else:
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return parse_timestamp(float(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                raise ValueError(f"unreadable timestamp {text[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- mapping records to items -----------------------------------------------------------------
def _pick(record: Mapping[str, Any], canonical: str, overrides: Mapping[str, str]) -> Any:
    names = (overrides[canonical],) if canonical in overrides else FIELD_CANDIDATES[canonical]
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def item_from_record(record: Any, overrides: Mapping[str, str], origin: str) -> tuple[RawItem | None, str | None]:
    """A record (JSON object or CSV row) as an item, or ``(None, why)``; a bad timestamp is only a warning."""
    if not isinstance(record, Mapping):
        return None, f"{origin}: expected an object, got {type(record).__name__}"
    warning = None
    try:
        published = parse_timestamp(_pick(record, "published", overrides))
    except ValueError as exc:
        published, warning = None, f"{origin}: {exc}; using the fetch time"
    ident, url = _pick(record, "id", overrides), _pick(record, "url", overrides)
    item = RawItem(
        external_id=str(ident) if ident is not None else None,
        url=str(url) if url is not None else None,
        title=_as_text(_pick(record, "title", overrides)),
        text=_as_text(_pick(record, "text", overrides)),
        published_at=published,
        origin=origin,
    )
    return item, warning


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


# -- files --------------------------------------------------------------------------------------
def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path.name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); file skipped"
        ) from None


def read_file(path: Path, source: SourceConfig, result: FetchResult) -> None:
    """Append the items of one file to ``result``; problems become messages."""
    name = source.name
    try:
        text = _decode(path, path.read_bytes())
    except ValueError as exc:
        result.messages.append(RunMessage("error", str(exc), name))
        return
    except OSError as exc:
        result.messages.append(RunMessage("error", f"{path}: cannot read: {exc.strerror or exc}", name))
        return
    suffix = path.suffix.lower()
    if suffix == ".txt":
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        title, _, body = text.strip().partition("\n")
        result.items.append(RawItem(str(path.name), None, title, body, stamp, path.name))
        return
    records: Iterable[tuple[str, Any]]
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        records = ((f"{path.name}:{reader.line_num}", row) for row in reader)
    elif suffix == ".json":
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            result.messages.append(RunMessage("error", f"{path.name}: not valid JSON: {exc}; file skipped", name))
            return
        records = ((f"{path.name}[{i}]", rec) for i, rec in enumerate(_item_list(payload) or []))
    else:
        records = _jsonl_records(path.name, text, result, name)
    for origin, record in records:
        item, problem = item_from_record(record, source.fields, origin)
        if problem:
            result.messages.append(RunMessage("warning" if item else "error", problem, name))
        if item:
            result.items.append(item)


def _jsonl_records(filename: str, text: str, result: FetchResult, source: str) -> Iterable[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{filename}:{number}", json.loads(line)
        except json.JSONDecodeError as exc:
            result.messages.append(
                RunMessage("error", f"{filename}:{number}: not valid JSON ({exc.msg}); line skipped", source)
            )


def fetch_files(source: SourceConfig, window: FetchWindow | None = None) -> FetchResult:
    result = FetchResult()
    root = resolve_path(source.url_or_path)
    if root.is_dir():
        paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES)
        if not paths:
            result.messages.append(RunMessage("warning", f"{root}: no .jsonl/.json/.csv/.txt files", source.name))
    elif root.is_file():
        paths = [root]
    else:
        result.messages.append(RunMessage("error", f"{root}: no such file or folder", source.name))
        return result
    for path in paths:
        read_file(path, source, result)
    return result


# -- feeds ----------------------------------------------------------------------------------------
def _http_get(url: str, source: SourceConfig, params: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """GET with the source's timeout; raises ``ValueError`` with a one-line reason."""
    import httpx

    try:
        response = httpx.get(url, params=params, headers=source.headers, timeout=source.timeout, follow_redirects=True)
    except httpx.TimeoutException:
        raise ValueError(f"{url}: no answer within {source.timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ValueError(f"{url}: cannot connect ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if response.status_code >= 400:
        raise ValueError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
    return response.content, response.headers.get("content-type", "")


def fetch_feed(source: SourceConfig, window: FetchWindow | None = None) -> FetchResult:
    import feedparser

    result = FetchResult()
    location = source.url_or_path
    try:
        if is_url(location):
            content, content_type = _http_get(location, source)
        else:
            content, content_type = resolve_path(location).read_bytes(), ""
    except ValueError as exc:
        result.messages.append(RunMessage("error", f"feed unavailable: {exc}", source.name))
        return result
    except OSError as exc:
        result.messages.append(RunMessage("error", f"feed unavailable: {location}: {exc.strerror or exc}", source.name))
        return result
    # Bytes, never the location: feedparser would fetch URLs itself, without our timeout.
    parsed = feedparser.parse(content, response_headers={"content-type": content_type} if content_type else None)
    # A broken document may still yield empty entries from feedparser's lenient parser: skip those.
    entries = [e for e in parsed.entries if any(e.get(k) for k in ("title", "summary", "content", "link"))]
    if parsed.bozo and not entries:
        reason = " ".join(str(parsed.get("bozo_exception", "unknown error")).split())
        result.messages.append(RunMessage("error", f"{location}: not a valid RSS/Atom feed ({reason})", source.name))
        return result
    if parsed.bozo:
        reason = " ".join(str(parsed.get("bozo_exception", "")).split())
        result.messages.append(
            RunMessage(
                "warning",
                f"{location}: feed is not well-formed ({reason}); read {len(entries)} entries anyway",
                source.name,
            )
        )
    for number, entry in enumerate(entries, 1):
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        body = entry.get("summary") or (entry.get("content") or [{}])[0].get("value", "")
        result.items.append(
            RawItem(
                external_id=entry.get("id") or entry.get("link"),
                url=entry.get("link"),
                title=entry.get("title", ""),
                text=body,
                published_at=datetime(*when[:6], tzinfo=UTC) if when else None,
                origin=f"entry {number}",
            )
        )
    return result


# -- HTTP JSON --------------------------------------------------------------------------------------
def _item_list(payload: Any, key: str | None = None) -> list[Any] | None:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for name in (key,) if key else ITEM_KEYS:
            if isinstance(payload.get(name), list):
                return payload[name]
    return None


def fetch_http(source: SourceConfig, window: FetchWindow | None = None) -> FetchResult:
    result = FetchResult()
    window = window or FetchWindow()
    since = window.since.isoformat() if window.since else ""
    until = window.until.isoformat() if window.until else ""
    # Plain replacement, not str.format: other braces in a value are the endpoint's business.
    params = {k: v.replace("{since}", since).replace("{until}", until) for k, v in source.params.items()}
    params = {k: v for k, v in params.items() if v != ""}  # no window: leave the parameter out
    try:
        content, _ = _http_get(source.url_or_path, source, params)
    except ValueError as exc:
        result.messages.append(RunMessage("error", f"endpoint unavailable: {exc}", source.name))
        return result
    try:
        payload = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        result.messages.append(RunMessage("error", f"{source.url_or_path}: response is not JSON ({exc})", source.name))
        return result
    records = _item_list(payload, source.items_key)
    if records is None:
        where = f"key '{source.items_key}'" if source.items_key else f"a list or one of keys {', '.join(ITEM_KEYS)}"
        result.messages.append(RunMessage("error", f"{source.url_or_path}: response has no {where}", source.name))
        return result
    for index, record in enumerate(records):
        item, problem = item_from_record(record, source.fields, f"item {index}")
        if problem:
            result.messages.append(RunMessage("warning" if item else "error", problem, source.name))
        if item:
            result.items.append(item)
    return result


FETCHERS: dict[str, Callable[[SourceConfig, FetchWindow | None], FetchResult]] = {
    "rss": fetch_feed,
    "file": fetch_files,
    "http": fetch_http,
}


def fetch(source: SourceConfig, window: FetchWindow | None = None, now: datetime | None = None) -> FetchResult:
    """Fetch one source; ``replay`` moves the newest item to ``now``, the others keeping their spacing."""
    result = FETCHERS[source.kind](source, window)
    if source.replay and result.items:
        stamps = [item.published_at for item in result.items if item.published_at]
        if stamps:
            shift = (now or datetime.now(UTC)) - max(stamps)
            result.items = [
                replace(item, published_at=item.published_at + shift) if item.published_at else item
                for item in result.items
            ]
    return result


# -- normalisation ------------------------------------------------------------------------------------
def content_hash(title: str, text: str) -> str:
    """The identity of a document's content: case and spacing do not make a new document."""
    canonical = " ".join(f"{title}\n{text}".lower().split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def normalise(
    item: RawItem, source: str, fetched_at: datetime, clean: Callable[[str], str]
) -> tuple[NewDocument | None, RunMessage | None]:
    """A storable document, or ``(None, why)`` for an empty one; over-long text is cut with a warning."""
    title = clean(_CONTROL.sub(" ", item.title or ""))
    text = clean(_CONTROL.sub(" ", item.text or ""))
    label = item.external_id or item.url or item.origin
    if not title and not text:
        return None, RunMessage("warning", f"{item.origin or label}: empty document skipped", source)
    message = None
    if len(text) > MAX_DOCUMENT_CHARS:
        text = text[:MAX_DOCUMENT_CHARS]
        message = RunMessage("warning", f"{label}: text cut to {MAX_DOCUMENT_CHARS} characters", source)
    doc = NewDocument(
        source=source,
        external_id=(item.external_id or None) and item.external_id[:500],
        url=(item.url or None) and item.url[:2000],
        content_hash=content_hash(title, text),
        title=title,
        text=text,
        published_at=item.published_at or fetched_at,
        fetched_at=fetched_at,
    )
    return doc, message
