"""Sources: files, feeds and HTTP endpoints, including bad input (all on disk or loopback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plugins.sentiment.options import SourceConfig
from plugins.sentiment.sources import FetchWindow, RawItem, content_hash, fetch, normalise, parse_timestamp

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def source(kind: str, where: str, **extra) -> SourceConfig:
    return SourceConfig(name="test", kind=kind, url_or_path=where, **extra)


def errors(result) -> list[str]:
    return [m.message for m in result.messages if m.level == "error"]


def test_parse_timestamp_formats() -> None:
    expected = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    assert parse_timestamp("2025-03-14T12:00:00Z") == expected
    assert parse_timestamp("2025-03-14T13:00:00+01:00") == expected
    assert parse_timestamp("2025-03-14 12:00") == expected  # naive: UTC
    assert parse_timestamp("Fri, 14 Mar 2025 12:00:00 GMT") == expected
    assert parse_timestamp(expected.timestamp()) == expected
    assert parse_timestamp(int(expected.timestamp() * 1000)) == expected
    assert parse_timestamp("") is None
    with pytest.raises(ValueError, match="unreadable timestamp"):
        parse_timestamp("next tuesday")


def test_sample_sources_parse() -> None:
    wire = fetch(source("file", "sample:news.jsonl"))
    feed = fetch(source("rss", "sample:feed.xml"))
    assert not wire.messages and not feed.messages
    assert len(wire.items) >= 20 and len(feed.items) >= 10
    first = feed.items[0]
    assert first.external_id.startswith("mkt-") and first.url.startswith("https://")
    assert first.published_at.tzinfo is not None and first.title and first.text


def test_replay_moves_the_newest_item_to_now_and_keeps_spacing() -> None:
    plain = fetch(source("file", "sample:news.jsonl"))
    replayed = fetch(source("file", "sample:news.jsonl", replay=True), now=NOW)
    assert max(i.published_at for i in replayed.items) == NOW
    gaps = [a.published_at - b.published_at for a, b in zip(plain.items, plain.items[1:], strict=False)]
    new_gaps = [a.published_at - b.published_at for a, b in zip(replayed.items, replayed.items[1:], strict=False)]
    assert gaps == new_gaps


def test_folder_of_files_with_bad_ones(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.jsonl").write_text(
        json.dumps({"id": "a1", "title": "Acme up", "text": "Acme rose.", "published_at": "2025-01-01T00:00:00Z"})
        + "\n{not json\n"
        + json.dumps({"id": "a2", "headline": "Acme down", "body": "Acme fell.", "date": "yesterday-ish"})
        + "\n[1, 2]\n",
        encoding="utf-8",
    )
    (folder / "b.csv").write_text("id,title,text,url\nb1,Globex,Globex signs deal,https://x/b1\n", encoding="utf-8")
    (folder / "latin1.csv").write_bytes("id,text\nc1,Caf\xe9 chain Acme expands\n".encode("latin-1"))
    (folder / "note.txt").write_text("Initech headline\nInitech body text.", encoding="utf-8")
    (folder / "ignored.bin").write_bytes(b"\x00\x01")
    result = fetch(source("file", str(folder)))
    by_id = {item.external_id: item for item in result.items}
    assert set(by_id) == {"a1", "a2", "b1", "note.txt"}
    assert by_id["a2"].title == "Acme down" and by_id["a2"].published_at is None
    assert by_id["note.txt"].title == "Initech headline" and by_id["note.txt"].text == "Initech body text."
    assert by_id["b1"].url == "https://x/b1"
    problems = " | ".join(m.message for m in result.messages)
    assert "a.jsonl:2: not valid JSON" in problems
    assert "a.jsonl:4: expected an object" in problems
    assert "unreadable timestamp 'yesterday-ish'; using the fetch time" in problems
    assert "latin1.csv: not UTF-8 text (byte 0xe9" in problems


def test_missing_path_and_field_mapping(tmp_path: Path) -> None:
    assert errors(fetch(source("file", str(tmp_path / "nope.jsonl")))) == [
        f"{tmp_path / 'nope.jsonl'}: no such file or folder"
    ]
    path = tmp_path / "custom.jsonl"
    path.write_text(json.dumps({"key": "k1", "article": "Acme beats estimates", "ts": 1735689600}) + "\n")
    result = fetch(source("file", str(path), fields={"id": "key", "text": "article", "published": "ts"}))
    [item] = result.items
    assert item.external_id == "k1" and item.text == "Acme beats estimates"
    assert item.published_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_malformed_feed_and_dead_feed(tmp_path: Path, dead_url: str) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<rss><channel><title>broken</title><item><title>x</ite", encoding="utf-8")
    [message] = errors(fetch(source("rss", str(bad))))
    assert "not a valid RSS/Atom feed" in message
    not_a_feed = tmp_path / "plain.xml"
    not_a_feed.write_text("just some text, not xml at all", encoding="utf-8")
    assert "not a valid RSS/Atom feed" in errors(fetch(source("rss", str(not_a_feed))))[0]
    [message] = errors(fetch(source("rss", dead_url, timeout=2)))
    assert message.startswith("feed unavailable: http://127.0.0.1:") and "cannot connect" in message


def test_rss_over_http_and_atom(loopback) -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:t</id><updated>2025-01-02T00:00:00Z</updated>
<entry><id>urn:e1</id><title>Acme wins contract</title><link href="https://x/e1"/>
<updated>2025-01-02T00:00:00Z</updated><summary>Acme won a &lt;b&gt;large&lt;/b&gt; contract.</summary></entry>
</feed>"""
    url = loopback.raw("/atom", atom, "application/atom+xml")
    [item] = fetch(source("rss", url)).items
    assert item.external_id == "urn:e1" and item.url == "https://x/e1"
    assert item.published_at == datetime(2025, 1, 2, tzinfo=UTC)
    missing = fetch(source("rss", loopback.base + "/missing"))
    assert "HTTP 404" in errors(missing)[0]


def test_http_json_source_with_backfill_window(loopback) -> None:
    url = loopback.json(
        "/news",
        {
            "articles": [
                {
                    "id": 1,
                    "title": "Acme up",
                    "text": "Acme rose",
                    "url": "https://x/1",
                    "published": "2025-01-01T00:00:00Z",
                },
                {"id": 2, "title": "", "text": ""},
                "junk",
            ]
        },
    )
    config = source("http", url, params={"from": "{since}", "to": "{until}", "lang": "en"}, headers={"X-Key": "k"})
    since = datetime(2025, 1, 1, tzinfo=UTC)
    result = fetch(config, FetchWindow(since, since + timedelta(days=1)))
    assert [item.external_id for item in result.items] == ["1", "2"]
    assert "item 2: expected an object" in errors(result)[0]
    method, path, _ = loopback.requests[-1]
    assert method == "GET" and "from=2025-01-01T00%3A00%3A00%2B00%3A00" in path and "lang=en" in path
    without_window = fetch(config)
    assert "from=" not in loopback.requests[-1][1] and len(without_window.items) == 2


def test_http_source_errors(loopback, dead_url: str) -> None:
    assert "response is not JSON" in errors(fetch(source("http", loopback.raw("/html", b"<html>"))))[0]
    assert (
        "response has no key 'rows'"
        in errors(fetch(source("http", loopback.json("/obj", {"items": []}), items_key="rows")))[0]
    )
    assert "HTTP 500" in errors(fetch(source("http", loopback.json("/boom", {}, status=500))))[0]
    assert "cannot connect" in errors(fetch(source("http", dead_url, timeout=2)))[0]


def test_normalise_rejects_empty_documents_and_cleans_text() -> None:
    from services.preprocessing import normalize_text

    empty = RawItem("e1", None, "  ", "<p> </p>", None, "news.jsonl:3")
    doc, problem = normalise(empty, "wire", NOW, normalize_text)
    assert doc is None and problem.level == "warning" and "news.jsonl:3: empty document skipped" in problem.message
    item = RawItem("x1", "https://x/1", "Acme <b>beats</b>\x00 estimates", "Body\u00a0text", None, "o")
    doc, problem = normalise(item, "wire", NOW, normalize_text)
    assert problem is None
    assert doc.title == "Acme beats estimates" and doc.text == "Body text"
    assert doc.published_at == NOW == doc.fetched_at
    assert doc.content_hash == content_hash("ACME beats   estimates", "body text")
