"""Items, interactions and a little state in the suite's database (SQLite or PostgreSQL).

Every write is one transaction: a file either goes in whole or not at all. A
``revision`` counter is bumped by each write, so that in-memory models built from the
interactions (item-item co-occurrence) know when they are stale, in any process. Tables
are created and changed by the plugin's migrations (``plugins/recommender/migrations``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from plugins.recommender.data import MAX_ID_CHARS, Interaction, Item
from suite.errors import DataError, NotFoundError

CHUNK = 500

metadata = MetaData()
items_table = Table(
    "recommender_items",
    metadata,
    Column("id", String(MAX_ID_CHARS), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("popularity", Integer, nullable=False, default=0),
)
interactions_table = Table(
    "recommender_interactions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(MAX_ID_CHARS), nullable=False, index=True),
    Column(
        "item",
        String(MAX_ID_CHARS),
        ForeignKey("recommender_items.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("timestamp", DateTime, nullable=True),
    Column("event", String(64), nullable=True),
    Column("rating", Float, nullable=True),
    UniqueConstraint("user", "item", "timestamp", name="uq_recommender_interaction"),
)
state_table = Table(
    "recommender_state",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


@dataclass
class StoredInteraction(Interaction):
    seq: int = 0  # insertion order: the tie-breaker when timestamps are missing or equal


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _chunks(values: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class RecommenderStore:
    """The plugin's tables on one SQLAlchemy engine whose schema the migrations made (``ctx.database``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- items -------------------------------------------------------------------------
    def add_items(self, items: Sequence[Item], *, replace: bool = False) -> tuple[int, int]:
        """Insert items (or update existing ones when ``replace``); returns (added, updated)."""
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise DataError("duplicate item ids in one import")
        now = utcnow()
        with self._transaction() as conn:
            existing = self._existing_ids(conn, ids)
            if existing and not replace:
                shown = ", ".join(sorted(existing)[:5])
                raise DataError(
                    f"{len(existing)} item id(s) already exist, nothing imported: {shown} (use --replace to update)"
                )
            rows = [self._item_row(item, now) for item in items]
            new_rows = [row for row in rows if row["id"] not in existing]
            if new_rows:
                conn.execute(insert(items_table), new_rows)
            for row in rows:
                if row["id"] in existing:
                    values = {k: v for k, v in row.items() if k != "id"}
                    conn.execute(update(items_table).where(items_table.c.id == row["id"]).values(**values))
            self._bump(conn)
        return len(new_rows), len(existing)

    @staticmethod
    def _item_row(item: Item, now: datetime) -> dict:
        return {
            "id": item.id,
            "title": item.title,
            "description": item.description,
            "tags": list(item.tags),
            "metadata": dict(item.metadata),
            "created_at": item.created_at or now,
        }

    def remove_item(self, item_id: str) -> int:
        """Delete an item and its interactions; returns how many interactions went with it."""
        with self._transaction() as conn:
            if not self._existing_ids(conn, [item_id]):
                raise NotFoundError(f"unknown item '{item_id}'")
            gone = conn.execute(delete(interactions_table).where(interactions_table.c.item == item_id)).rowcount
            conn.execute(delete(items_table).where(items_table.c.id == item_id))
            self._bump(conn)
        return gone

    def get_item(self, item_id: str) -> Item:
        items = self.get_items([item_id])
        if not items:
            raise NotFoundError(f"unknown item '{item_id}'")
        return items[0]

    def get_items(self, ids: Sequence[str]) -> list[Item]:
        """The items that exist among ``ids``, in the order asked."""
        found: dict[str, Item] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                for row in conn.execute(select(items_table).where(items_table.c.id.in_(chunk))):
                    found[row.id] = self._item(row)
        return [found[i] for i in ids if i in found]

    def iter_items(self, batch_size: int = 1000) -> Iterator[Item]:
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(
                select(items_table).order_by(items_table.c.id)
            )
            for row in result:
                yield self._item(row)

    def item_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(items_table.c.id).order_by(items_table.c.id)).scalars())

    def has_items(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` exist."""
        with self.engine.connect() as conn:
            return self._existing_ids(conn, list(ids))

    def popularity(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(items_table.c.id, items_table.c.popularity)).tuples().all())

    def created_at(self) -> dict[str, datetime]:
        with self.engine.connect() as conn:
            return dict(conn.execute(select(items_table.c.id, items_table.c.created_at)).tuples().all())

    @staticmethod
    def _item(row) -> Item:
        return Item(
            id=row.id,
            title=row.title,
            description=row.description,
            tags=list(row.tags or []),
            metadata=dict(row._mapping["metadata"] or {}),
            created_at=row.created_at,
        )

    @staticmethod
    def _existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(ids)):
            found.update(conn.execute(select(items_table.c.id).where(items_table.c.id.in_(chunk))).scalars())
        return found

    # -- interactions ------------------------------------------------------------------
    def add_interactions(self, interactions: Sequence[Interaction]) -> tuple[int, int]:
        """Insert interactions, skipping exact repeats already stored; returns (added, skipped).

        Items must exist (checked again inside the transaction, so a concurrent removal
        cannot leave dangling rows).
        """
        with self._transaction() as conn:
            missing = {i.item for i in interactions} - self._existing_ids(conn, list({i.item for i in interactions}))
            if missing:
                shown = ", ".join(sorted(missing)[:5])
                raise DataError(f"interactions name {len(missing)} unknown item(s), nothing imported: {shown}")
            stored = self._existing_keys(conn, interactions)
            fresh, seen = [], set(stored)
            for interaction in interactions:
                key = (interaction.user, interaction.item, interaction.timestamp)
                if key not in seen:
                    seen.add(key)
                    fresh.append(interaction)
            if fresh:
                conn.execute(
                    insert(interactions_table),
                    [
                        {"user": i.user, "item": i.item, "timestamp": i.timestamp, "event": i.event, "rating": i.rating}
                        for i in fresh
                    ],
                )
                counts: dict[str, int] = {}
                for interaction in fresh:
                    counts[interaction.item] = counts.get(interaction.item, 0) + 1
                for item_id, count in counts.items():
                    conn.execute(
                        update(items_table)
                        .where(items_table.c.id == item_id)
                        .values(popularity=items_table.c.popularity + count)
                    )
                self._bump(conn)
        return len(fresh), len(interactions) - len(fresh)

    @staticmethod
    def _existing_keys(conn: Connection, interactions: Sequence[Interaction]) -> set[tuple]:
        users = sorted({i.user for i in interactions})
        table = interactions_table
        keys: set[tuple] = set()
        for chunk in _chunks(users):
            rows = conn.execute(select(table.c.user, table.c.item, table.c.timestamp).where(table.c.user.in_(chunk)))
            keys.update((row.user, row.item, row.timestamp) for row in rows)
        return keys

    def history(self, user: str, limit: int | None = None) -> list[StoredInteraction]:
        """A user's interactions, oldest first (the last ``limit`` if given); those without a
        timestamp count as oldest, in the order they were stored."""
        table = interactions_table
        query = (
            select(table).where(table.c.user == user).order_by(table.c.timestamp.desc().nulls_last(), table.c.id.desc())
        )
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._interaction(row) for row in reversed(rows)]

    def seen_items(self, user: str) -> set[str]:
        with self.engine.connect() as conn:
            query = select(interactions_table.c.item).where(interactions_table.c.user == user).distinct()
            return set(conn.execute(query).scalars())

    def has_user(self, user: str) -> bool:
        with self.engine.connect() as conn:
            query = select(interactions_table.c.id).where(interactions_table.c.user == user).limit(1)
            return conn.execute(query).first() is not None

    def users(self, limit: int = 50, offset: int = 0) -> list[tuple[str, int]]:
        """Users with their number of distinct items, most active first."""
        table = interactions_table
        size = func.count(table.c.item.distinct()).label("size")
        query = select(table.c.user, size).group_by(table.c.user).order_by(size.desc(), table.c.user)
        with self.engine.connect() as conn:
            return list(conn.execute(query.limit(limit).offset(offset)).tuples())

    def all_interactions(self) -> list[StoredInteraction]:
        """Every interaction, per user in chronological order (missing timestamps by insertion)."""
        table = interactions_table
        query = select(table).order_by(table.c.user, table.c.timestamp.asc().nulls_first(), table.c.id)
        with self.engine.connect() as conn:
            return [self._interaction(row) for row in conn.execute(query)]

    def remove_interactions(self, user: str, item: str | None = None) -> int:
        """Forget a user's interactions (with one item, or all); returns how many went."""
        table = interactions_table
        condition = table.c.user == user if item is None else and_(table.c.user == user, table.c.item == item)
        with self._transaction() as conn:
            affected = list(conn.execute(select(table.c.item).where(condition).distinct()).scalars())
            if not affected:
                what = f"'{user}' with '{item}'" if item else f"'{user}'"
                raise NotFoundError(f"no interactions of {what}")
            gone = conn.execute(delete(table).where(condition)).rowcount
            self._recount_popularity(conn, affected)
            self._bump(conn)
        return gone

    @staticmethod
    def _recount_popularity(conn: Connection, item_ids: Sequence[str]) -> None:
        count = (
            select(func.count())
            .where(interactions_table.c.item == items_table.c.id)
            .correlate(items_table)
            .scalar_subquery()
        )
        for chunk in _chunks(list(item_ids)):
            conn.execute(update(items_table).where(items_table.c.id.in_(chunk)).values(popularity=count))

    @staticmethod
    def _interaction(row) -> StoredInteraction:
        return StoredInteraction(
            user=row.user, item=row.item, timestamp=row.timestamp, event=row.event, rating=row.rating, seq=row.id
        )

    # -- state and statistics ------------------------------------------------------------
    def revision(self) -> int:
        return int(self.get_state("revision") or 0)

    def get_state(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(state_table.c.value).where(state_table.c.key == key)).scalar()

    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            self._set_state(conn, key, value)

    @staticmethod
    def _set_state(conn: Connection, key: str, value: str) -> None:
        updated = conn.execute(update(state_table).where(state_table.c.key == key).values(value=value)).rowcount
        if not updated:
            conn.execute(insert(state_table).values(key=key, value=value))

    def _bump(self, conn: Connection) -> None:
        current = conn.execute(select(state_table.c.value).where(state_table.c.key == "revision")).scalar()
        self._set_state(conn, "revision", str(int(current or 0) + 1))

    def stats(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                "items": conn.execute(select(func.count()).select_from(items_table)).scalar_one(),
                "interactions": conn.execute(select(func.count()).select_from(interactions_table)).scalar_one(),
                "users": conn.execute(select(func.count(interactions_table.c.user.distinct()))).scalar_one(),
                "untouched_items": conn.execute(
                    select(func.count()).select_from(items_table).where(items_table.c.popularity == 0)
                ).scalar_one(),
            }

    def _transaction(self):
        return _Transaction(self.engine)


class _Transaction:
    """``engine.begin()`` that turns constraint violations into a one-line DataError."""

    def __init__(self, engine: Engine) -> None:
        self._context = engine.begin()

    def __enter__(self) -> Connection:
        return self._context.__enter__()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._context.__exit__(exc_type, exc, tb)
        if isinstance(exc, IntegrityError):
            raise DataError(
                f"the store changed during the write, nothing written: {str(exc.orig).splitlines()[0]}"
            ) from None
        return False
