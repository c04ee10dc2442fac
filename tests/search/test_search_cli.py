"""``suite search indexes|query|drop`` on the embedded backend in a temporary data dir."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from services.search import Document, IndexSpec
from suite.commands.search import build, parse_filter_options
from suite.context import SuiteContext
from suite.errors import DataError, NotFoundError

runner = CliRunner()


@pytest.fixture
def ctx():
    context = SuiteContext.create(discover=False)
    yield context
    if "search" in context.__dict__:
        context.search.close()
    context.shutdown()


@pytest.fixture
def travel(ctx: SuiteContext) -> SuiteContext:
    ctx.search.ensure_index(IndexSpec("travel", vector_dim=None, description="travel notes"))
    ctx.search.upsert(
        "travel",
        [
            Document(
                "castle-museum", "The castle museum shows the history of the castle.", None, {"city": "Edinburgh"}
            ),
            Document(
                "old-town", "Walk through the old town to the castle gate.", None, {"city": "Edinburgh", "year": 2020}
            ),
            Document("harbour", "Ferry to the harbour.", None, {"city": "Bergen", "year": 2019}),
        ],
    )
    return ctx


def invoke(ctx: SuiteContext, *args: str, input: str | None = None):
    return runner.invoke(build(ctx), list(args), input=input)


def test_indexes_lists_name_documents_dimension_backend(travel: SuiteContext):
    result = invoke(travel, "indexes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"name": "travel", "documents": 3, "vector_dim": None, "backend": "embedded", "description": "travel notes"}
    ]
    table = invoke(travel, "indexes")
    assert "travel" in table.output and "embedded" in table.output and "3" in table.output


def test_query_bm25_with_filters(travel: SuiteContext):
    result = invoke(travel, "query", "travel", "castle", "--mode", "bm25", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert [hit["id"] for hit in hits] == ["castle-museum", "old-town"]
    assert hits[0]["bm25_rank"] == 1 and hits[0]["metadata"] == {"city": "Edinburgh"}
    filtered = invoke(travel, "query", "travel", "castle", "-k", "5", "--filter", "year>=2020", "--json")
    assert [hit["id"] for hit in json.loads(filtered.output)] == ["old-town"]  # auto: bm25, no vectors here
    table = invoke(travel, "query", "travel", "castle gate", "-f", "city=Edinburgh", "-f", "city=Bergen")
    assert result.exit_code == 0 and "old-town" in table.output and "castle-museum" in table.output
    assert "no matches" in invoke(travel, "query", "travel", "submarine").output


def test_query_errors(travel: SuiteContext):
    assert isinstance(invoke(travel, "query", "ghost", "castle", "--mode", "bm25").exception, NotFoundError)
    assert isinstance(invoke(travel, "query", "travel", " ", "--mode", "bm25").exception, DataError)
    assert isinstance(invoke(travel, "query", "travel", "castle", "--filter", "year").exception, DataError)
    assert invoke(travel, "query", "travel", "castle", "--mode", "fuzzy").exit_code == 2  # typer's usage error


def test_drop(travel: SuiteContext):
    assert invoke(travel, "drop", "travel", input="n\n").exit_code == 1  # declined: nothing dropped
    assert travel.search.list_indexes() == ["travel"]
    result = invoke(travel, "drop", "travel", "--yes")
    assert result.exit_code == 0 and "dropped search index 'travel' (3 documents)" in result.output
    assert travel.search.list_indexes() == []
    assert isinstance(invoke(travel, "drop", "travel", "--yes").exception, NotFoundError)


def test_errors_reach_the_terminal_as_one_line(capsys: pytest.CaptureFixture[str]):
    from suite.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["search", "query", "ghost", "castle", "--mode", "bm25"])
    assert exit_info.value.code == 2
    assert "error: search index 'ghost' does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["lang=en"], {"lang": "en"}),
        (["lang=en", "lang=de", "lang=fr"], {"lang": ["en", "de", "fr"]}),
        (["year>=2020", "year<2024"], {"year": {"gte": 2020, "lt": 2024}}),
        (["price<=9.5", "open=true", "n>3"], {"price": {"lte": 9.5}, "open": True, "n": {"gt": 3}}),
        (['code="42"', "date>=2024-01-01"], {"code": "42", "date": {"gte": "2024-01-01"}}),
        (["note=a=b"], {"note": "a=b"}),
        (None, {}),
    ],
)
def test_parse_filter_options(options, expected):
    assert parse_filter_options(options) == expected


@pytest.mark.parametrize("options", [["year"], ["=x"], ["year="], ["year>=2020", "year=2021"], ["y=1", "y>0"]])
def test_parse_filter_options_rejects(options):
    with pytest.raises(DataError):
        parse_filter_options(options)


@pytest.mark.slow
def test_hybrid_query_embeds_the_text(ctx: SuiteContext):
    import torch

    torch.set_num_threads(1)
    embedder = ctx.embedder()
    passages = {
        "cats": "Cats are small furry pets that purr.",
        "stocks": "The stock market fell sharply on Monday.",
        "castle": "The castle museum shows the history of the castle.",
    }
    ctx.search.ensure_index(IndexSpec("mixed", vector_dim=embedder.dimension))
    vectors = embedder.encode(list(passages.values()))
    ctx.search.upsert("mixed", [Document(k, t, v) for (k, t), v in zip(passages.items(), vectors, strict=True)])
    vector_hits = json.loads(invoke(ctx, "query", "mixed", "kitten", "--mode", "vector", "-k", "1", "--json").output)
    assert vector_hits[0]["id"] == "cats"  # no shared word: only the embedding can find it
    hybrid = json.loads(invoke(ctx, "query", "mixed", "castle history", "--json").output)  # auto: hybrid
    assert hybrid[0]["id"] == "castle" and hybrid[0]["bm25_rank"] == 1 and hybrid[0]["vector_rank"] == 1
