"""Reading and validating items and interactions; imports are all or nothing (no model needed)."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from plugins.recommender.data import (
    SAMPLE_INTERACTIONS,
    SAMPLE_ITEMS,
    Item,
    item_text,
    load_interactions,
    load_items,
    parse_timestamp,
)
from plugins.recommender.service import get_recommender, parse_filters
from suite.errors import DataError, NotFoundError

TEMPLATE = "{title}\n{description}\n{tags}"


def test_sample_data_is_valid_and_clustered():
    items = load_items(SAMPLE_ITEMS, TEMPLATE)
    ids = {item.id for item in items}
    interactions = load_interactions(SAMPLE_INTERACTIONS, ids.__contains__)
    assert 60 <= len(items) <= 120
    assert len({i.user for i in interactions}) >= 20
    assert {item.metadata["category"] for item in items} >= {"machine-learning", "astronomy", "cooking"}
    assert ids - {i.item for i in interactions}, "some sample items must be untouched (cold items)"
    assert all(i.timestamp is not None for i in interactions)


def test_item_text_follows_the_template_and_drops_blank_parts():
    item = Item("x", title="Sourdough", description="", tags=["bread", "baking"], metadata={"lang": "en"})
    assert item_text(item, TEMPLATE) == "Sourdough. bread, baking."
    assert item_text(item, "{title} ({lang})") == "Sourdough (en)."
    assert item_text(Item("y"), TEMPLATE) == ""


def test_csv_items_with_tags_metadata_and_dates(write_text):
    path = write_text(
        "items.csv",
        "id,title,description,tags,category,published\na1,First,Some text,x;y,news,2024-03-01\na2,Second,,z,blog,\n",
    )
    first, second = load_items(path, TEMPLATE)
    assert first.tags == ["x", "y"] and first.metadata == {"category": "news", "published": "2024-03-01"}
    assert first.created_at == datetime(2024, 3, 1)
    assert second.created_at is None and second.metadata == {"category": "blog"}


def test_bad_items_are_reported_together_with_line_numbers(write_jsonl):
    path = write_jsonl(
        "items.jsonl",
        [
            {"id": "a", "title": "fine"},
            {"id": "a", "title": "again"},
            {"id": "b", "title": "", "description": " ", "tags": []},
            {"title": "no id"},
            {"id": "c", "title": "x", "published": "last tuesday"},
        ],
    )
    with pytest.raises(DataError) as error:
        load_items(path, TEMPLATE)
    message = str(error.value)
    assert "4 bad items" in message and "nothing imported" in message
    assert "line 2: duplicate item id 'a' (first on line 1)" in message
    assert "line 3: item 'b' has no text" in message
    assert "line 4: missing or invalid item id" in message
    assert "line 5: invalid timestamp" in message


def test_bad_interactions_name_unknown_items_and_duplicates(write_text):
    path = write_text(
        "interactions.csv",
        "user,item,timestamp,event,rating\n"
        "u1,a,2024-01-01T10:00:00,view,\n"
        "u1,ghost,2024-01-01T11:00:00,view,\n"
        "u1,a,2024-01-01T10:00:00,like,\n"
        "u2,a,,view,five\n",
    )
    with pytest.raises(DataError) as error:
        load_interactions(path, {"a"}.__contains__)
    message = str(error.value)
    assert "line 3: unknown item 'ghost'" in message
    assert "line 4: duplicate interaction of 'u1' with 'a' (first on line 2)" in message
    assert "line 5: rating 'five' is not a number" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.jsonl", b"", "file is empty"),
        ("binary.csv", b"id,title\n\x00\x01\x02", "binary file"),
        ("latin1.csv", "id,title\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        ("items.xlsx", b"PK\x03\x04", "unsupported file type"),
        ("items.txt", b"id,title\n", "unsupported file type"),
        ("broken.jsonl", b'{"id": "a"\n', "not valid JSON"),
        ("list.jsonl", b"[1, 2]\n", "expected a JSON object"),
    ],
)
def test_unreadable_files_give_one_line_errors(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected):
        load_items(path, TEMPLATE)


def test_missing_file():
    with pytest.raises(DataError, match="file not found"):
        load_items("/nonexistent/items.jsonl", TEMPLATE)


def test_timestamps_accept_iso_and_unix_seconds():
    assert parse_timestamp("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10, 0)
    assert parse_timestamp(0) == datetime(1970, 1, 1)
    assert parse_timestamp("1700000000") == datetime(2023, 11, 14, 22, 13, 20)
    assert parse_timestamp("") is None


def test_filters_from_the_command_line():
    assert parse_filters(["category=news", "lang=en", "lang=de"]) == {"category": "news", "lang": ["en", "de"]}
    with pytest.raises(DataError, match="not key=value"):
        parse_filters(["category"])


def test_failed_imports_write_nothing(ctx, write_jsonl, write_text):
    recommender = get_recommender(ctx)
    bad_items = write_jsonl("items.jsonl", [{"id": "a", "title": "ok"}, {"id": "a", "title": "dup"}])
    with pytest.raises(DataError, match="duplicate item id"):
        recommender.import_items(bad_items)
    assert recommender.store.stats()["items"] == 0

    # The store must have items before interactions can name them; a file naming others fails whole.
    recommender.store.add_items([Item("a", title="Alpha"), Item("b", title="Beta")])
    bad_interactions = write_text("interactions.csv", "user,item\nu1,a\nu1,missing\nu2,b\n")
    with pytest.raises(DataError, match="unknown item 'missing'"):
        recommender.import_interactions(bad_interactions)
    assert recommender.store.stats()["interactions"] == 0

    # An id that already exists is refused before anything is embedded or written.
    again = write_jsonl("again.jsonl", [{"id": "c", "title": "new"}, {"id": "a", "title": "exists"}])
    with pytest.raises(DataError, match="already exist: a"):
        recommender.import_items(again)
    assert recommender.store.item_ids() == ["a", "b"]


def test_store_keeps_histories_and_popularity(ctx):
    from plugins.recommender.data import Interaction

    store = get_recommender(ctx).store
    store.add_items([Item("a", title="Alpha"), Item("b", title="Beta")])
    t1, t2 = datetime(2024, 1, 1), datetime(2024, 1, 2)
    added, skipped = store.add_interactions(
        [Interaction("u1", "b", t2, "like"), Interaction("u1", "a", t1), Interaction("u2", "a", None)]
    )
    assert (added, skipped) == (3, 0)
    assert store.add_interactions([Interaction("u1", "a", t1)]) == (0, 1)  # re-import is idempotent
    assert [h.item for h in store.history("u1")] == ["a", "b"]  # chronological
    assert store.popularity() == {"a": 2, "b": 1}
    assert store.users() == [("u1", 2), ("u2", 1)]
    assert store.remove_item("a") == 2
    assert store.popularity() == {"b": 1} and not store.has_user("u2")
    with pytest.raises(NotFoundError, match="unknown item 'a'"):
        store.get_item("a")
    with pytest.raises(DataError, match="unknown item"):
        store.add_interactions([Interaction("u3", "a")])


@pytest.mark.postgres
def test_store_on_postgresql(context_factory, postgres_url):
    from sqlalchemy import create_engine, text

    from plugins.recommender.data import Interaction

    schema = f"recommender_test_{uuid.uuid4().hex[:10]}"  # tables and version table of this test only
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    ctx = context_factory(f"{postgres_url}?options=-csearch_path%3D{schema}")
    try:
        store = get_recommender(ctx).store
        store.add_items([Item("a", title="Alpha"), Item("b", title="Beta")])
        store.add_interactions([Interaction("u1", "a", datetime(2024, 1, 1)), Interaction("u1", "b", None)])
        with pytest.raises(DataError):
            store.add_items([Item("c", title="Gamma"), Item("a", title="dup")])
        assert store.item_ids() == ["a", "b"]
        assert [h.item for h in store.history("u1")] == ["b", "a"]  # no timestamp counts as oldest
        assert store.remove_interactions("u1", "b") == 1
        assert store.popularity() == {"a": 1, "b": 0}
        with ctx.database.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM recommender_items")).scalar() == 2
    finally:
        ctx.database.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
