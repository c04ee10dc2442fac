"""Entity linking through the shared spaCy pipeline and the plugin's patterns."""

from __future__ import annotations

import pytest

from plugins.sentiment.entities import EntityLinker, normalise_name
from plugins.sentiment.options import WatchEntity

WATCHLIST = [
    WatchEntity(name="Apple", ticker="AAPL", aliases=["Apple Inc.", "$AAPL"]),
    WatchEntity(name="Northwind Bank", ticker="$nwbk", aliases=["Northwind", "Northwind Bank plc"]),
]


def test_normalise_name_drops_legal_forms_articles_and_possessives() -> None:
    assert normalise_name("The Apple Inc.") == "apple"
    assert normalise_name("Northwind Bank plc's") == "northwind bank"
    assert normalise_name("Fabrikam Energy Corp.") == "fabrikam energy"
    assert normalise_name("Group") == "group"  # a name that is only a suffix stays


def test_patterns_cover_cashtags_watchlist_tickers_and_aliases() -> None:
    linker = EntityLinker(WATCHLIST)
    patterns = linker.patterns()
    assert {"label": "TICKER", "pattern": [{"ORTH": "AAPL"}], "id": "Apple"} in patterns
    assert {"label": "TICKER", "pattern": [{"ORTH": "NWBK"}], "id": "Northwind Bank"} in patterns
    assert {"label": "ORG", "pattern": [{"LOWER": "apple"}, {"LOWER": "inc."}], "id": "Apple"} in patterns
    assert patterns[0]["pattern"][0] == {"ORTH": "$"}  # any cash-tag is a ticker
    assert linker.resolve("$aapl") == "Apple" and linker.resolve("nwbk") == "Northwind Bank"
    assert linker.resolve("Northwind Bank PLC") == "Northwind Bank" and linker.resolve("Pear") is None


def test_alias_tokens_are_cached_per_watchlist_and_give_the_same_patterns(tmp_path, monkeypatch) -> None:
    from plugins.sentiment import entities

    fresh = EntityLinker(WATCHLIST).patterns(tmp_path)
    assert fresh == EntityLinker(WATCHLIST).patterns()
    assert len(list((tmp_path / "entity-patterns").glob("*.json"))) == 1

    def no_tokenizer(alias: str) -> list[str]:
        raise AssertionError(f"tokenised {alias!r} again")

    monkeypatch.setattr(entities, "alias_tokens", no_tokenizer)
    assert EntityLinker(WATCHLIST).patterns(tmp_path) == fresh  # read back: spaCy's tokenizer is not built
    other = [WatchEntity(name="Contoso", aliases=["Contoso Ltd"])]
    with pytest.raises(AssertionError, match="tokenised 'Contoso"):  # another watchlist, another entry
        EntityLinker(other).patterns(tmp_path)


def test_linking_through_the_shared_pipeline(context_factory) -> None:
    ctx = context_factory({"watchlist": [w.model_dump() for w in WATCHLIST], "sources": [], "rules": []})
    texts = [
        "Shares of Apple Inc. rose after $AAPL beat estimates.",
        "NWBK fell as northwind bank plc disclosed a probe.",
        "The Northwind Bank's chair resigned.",
        "IT budgets grew; $MSFT and ALL rose.",  # a foreign cash-tag and capitalised words: no link
        "Fruit growers expect a good apple harvest.",  # one-word aliases keep their case
    ]
    linker = EntityLinker(WATCHLIST)
    linked = [linker.link(found) for found in ctx.preprocessor.entities(texts)]
    assert linked[0] == {"Apple": "Apple Inc."}
    assert set(linked[1]) == {"Northwind Bank"}
    assert set(linked[2]) == {"Northwind Bank"}
    assert linked[3] == {} and linked[4] == {}
    tickers = [e for e in ctx.preprocessor.entities([texts[3]])[0] if e.label == "TICKER"]
    assert [e.text for e in tickers] == ["$MSFT"]
