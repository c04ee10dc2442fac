"""``suite search``: list, query and drop the search indexes (embedded or Elasticsearch)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from suite.errors import DataError

if TYPE_CHECKING:
    from services.search import Hit, SearchBackend
    from suite.context import SuiteContext

console = Console()
FILTER_OPTION = re.compile(r"^\s*([^=<>!\s]+)\s*(>=|<=|=|>|<)\s*(.*)$")
RANGE_OPERATORS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}


class Mode(str, Enum):
    auto = "auto"
    bm25 = "bm25"
    vector = "vector"
    hybrid = "hybrid"


def parse_value(text: str) -> Any:
    """A number, true/false or a JSON string literal as such; anything else as a plain string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def parse_filter_options(options: list[str] | None) -> dict[str, Any]:
    """``--filter`` options as a search filter dict.

    ``lang=en`` equality; the same key twice (``lang=en lang=de``) any-of; ``year>=2020``
    with ``>=``, ``<=``, ``>``, ``<`` a range (several on one key combine). Values that
    read as JSON numbers or booleans are typed; quote them (``code='"42"'``) to keep a string.
    """
    filters: dict[str, Any] = {}
    for option in options or []:
        match = FILTER_OPTION.match(option)
        if not match or not match[3]:
            raise DataError(f"--filter {option!r}: expected key=value, or key>=value, key<=value, key>value, key<value")
        key, operator, value = match[1], match[2], parse_value(match[3].strip())
        current = filters.get(key)
        if operator == "=":
            if current is None:
                filters[key] = value
            elif isinstance(current, dict):
                raise DataError(f"--filter {key}: cannot combine a range with an equality")
            else:
                filters[key] = [*current, value] if isinstance(current, list) else [current, value]
        else:
            if current is not None and not isinstance(current, dict):
                raise DataError(f"--filter {key}: cannot combine a range with an equality")
            filters[key] = {**(current or {}), RANGE_OPERATORS[operator]: value}
    return filters


def open_backend(ctx: SuiteContext) -> SearchBackend:
    """The configured backend (``ctx.search`` creates the indexes plugins declare)."""
    ctx.startup()
    return ctx.search


def hits_table(hits: list[Hit], mode: str, wide: bool = False) -> Table:
    """One row per hit: the id over the start of its text; metadata only with ``wide``."""
    table = Table("#", "hit", "score", box=box.SIMPLE_HEAD)
    if mode == "hybrid":
        table.add_column("bm25 #", justify="right")
        table.add_column("vector #", justify="right")
    if wide:
        table.add_column("metadata", overflow="fold", ratio=1)
    table.columns[1].ratio = 3
    table.columns[1].overflow = "fold"
    limit = 400 if wide else 160
    for rank, hit in enumerate(hits, start=1):
        ranks = [str(hit.bm25_rank or "-"), str(hit.vector_rank or "-")] if mode == "hybrid" else []
        flat = " ".join(hit.text.split())
        text = flat if len(flat) <= limit else flat[: limit - 1] + "…"
        metadata = [escape(json.dumps(hit.metadata, ensure_ascii=False)) if hit.metadata else ""] if wide else []
        cell = f"[bold]{escape(hit.id)}[/]\n{escape(text)}"
        table.add_row(str(rank), cell, f"{hit.score:.4f}", *ranks, *metadata)
    return table


def build(ctx: SuiteContext) -> typer.Typer:
    app = typer.Typer(help="Search indexes: list, query, drop.", no_args_is_help=True)

    @app.command("indexes")
    def indexes_command(as_json: bool = typer.Option(False, "--json", help="JSON instead of a table")) -> None:
        """List the indexes: name, documents, vector dimension, backend."""
        backend = open_backend(ctx)
        infos = [backend.describe(name) for name in backend.list_indexes()]
        if as_json:
            typer.echo(json.dumps([asdict(info) for info in infos], indent=2))
        elif not infos:
            console.print("no search indexes")
        else:
            table = Table("index", "documents", "vector dim", "backend", "description", box=box.SIMPLE_HEAD)
            for info in infos:
                dim = str(info.vector_dim) if info.vector_dim else "-"
                table.add_row(escape(info.name), str(info.documents), dim, info.backend, escape(info.description))
            console.print(table)

    @app.command("query")
    def query_command(
        index: str = typer.Argument(..., help="index name"),
        text: str = typer.Argument(..., help="query text"),
        mode: Mode = typer.Option(
            Mode.auto, "--mode", "-m", help="auto: hybrid if the index stores vectors, else bm25"
        ),
        k: int = typer.Option(10, "-k", "--k", min=1, help="number of results"),
        filters: list[str] = typer.Option(
            None, "--filter", "-f", help="key=value (repeat a key for any-of), key>=value, key<value..."
        ),
        as_json: bool = typer.Option(False, "--json", help="JSON instead of a table"),
        wide: bool = typer.Option(False, "--wide", help="longer texts and each hit's metadata"),
    ) -> None:
        """Search an index; vector and hybrid modes embed TEXT with the configured embedder."""
        backend = open_backend(ctx)
        filter_dict = parse_filter_options(filters)
        chosen = mode.value
        if chosen == "auto":
            chosen = "hybrid" if backend.describe(index).vector_dim else "bm25"
        vector = ctx.embedder().encode_one(text) if chosen in ("vector", "hybrid") else None
        hits = backend.search(index, text=text, vector=vector, k=k, mode=chosen, filters=filter_dict or None)
        if as_json:
            typer.echo(json.dumps([asdict(hit) for hit in hits], indent=2, ensure_ascii=False))
        elif not hits:
            console.print("no matches")
        else:
            console.print(hits_table(hits, chosen, wide))

    @app.command("drop")
    def drop_command(
        index: str = typer.Argument(..., help="index name"),
        yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    ) -> None:
        """Delete an index and all its documents."""
        backend = open_backend(ctx)
        documents = backend.describe(index).documents  # NotFoundError before asking anything
        if not yes:
            typer.confirm(f"drop search index '{index}' and its {documents} documents?", abort=True)
        backend.drop_index(index)
        console.print(f"dropped search index '{index}' ({documents} documents)")

    return app
