"""The watchlist: entities (tickers with aliases) and how items are linked to them.

Matching rules (`EntityMatcher`):
- cashtags: `$AAPL` (any case, `$aapl` too) links the entity whose ticker is AAPL; a class suffix such as
  `$BRK.B` is kept as part of the ticker;
- aliases ("Apple", "Apple Inc.") match whole tokens only, case-sensitively (so "apple pie" and "Pineapple"
  do not link Apple), with punctuation between words ignored ("Apple Inc." matches "Apple Inc");
- a bare ticker ("AAPL") is not matched unless it is listed as an alias: short tickers are ordinary words
  ("ON", "ALL", "IT").

The matcher tokenises a text once and looks tokens up in a dict keyed by an alias's first token, so its cost
grows with the text, not with the number of entities (the benchmark measures it on 1,000 entities).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from django.db import transaction

from apps.core.errors import ServiceError
from apps.sentiment.models import Entity

_TOKEN_RE = re.compile(r"\w+(?:[&.\-]\w+)*", re.UNICODE)
_CASHTAG_RE = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9}(?:\.[A-Za-z]{1,2})?)\b")
_TICKER_RE = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:\.[A-Z]{1,2})?$")


def tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


@dataclass(frozen=True)
class _Alias:
    tokens: tuple[str, ...]
    entity_id: int
    text: str


class EntityMatcher:
    """Links texts to entities by cashtag and alias; build once per watchlist, call `match` per text."""

    def __init__(self, entities: Iterable[tuple[int, str, list[str]]]) -> None:
        self.by_ticker: dict[str, int] = {}
        self.by_first: dict[str, list[_Alias]] = {}
        for entity_id, ticker, aliases in entities:
            self.by_ticker[ticker.upper()] = entity_id
            for alias in aliases:
                toks = tuple(tokens(alias))
                if toks:
                    self.by_first.setdefault(toks[0], []).append(_Alias(toks, entity_id, alias))
        for candidates in self.by_first.values():
            candidates.sort(key=lambda a: -len(a.tokens))  # longest alias first: "Apple Inc." before "Apple"

    def match(self, text: str) -> dict[int, str]:
        """entity id -> what matched (the cashtag or the alias), first match per entity."""
        found: dict[int, str] = {}
        for m in _CASHTAG_RE.finditer(text):
            entity_id = self.by_ticker.get(m.group(1).upper())
            if entity_id is not None and entity_id not in found:
                found[entity_id] = m.group(0)
        if not self.by_first:
            return found
        toks = tokens(text)
        for i, tok in enumerate(toks):
            for alias in self.by_first.get(tok, ()):
                n = len(alias.tokens)
                if tuple(toks[i : i + n]) == alias.tokens and alias.entity_id not in found:
                    found[alias.entity_id] = alias.text
        return found


_CACHE: dict[str, object] = {"key": None, "matcher": None}


def current_matcher() -> EntityMatcher:
    """The matcher for the active watchlist, rebuilt only when the watchlist changed."""
    rows = list(Entity.objects.filter(active=True).values_list("id", "ticker", "aliases").order_by("id"))
    key = repr(rows)
    if _CACHE["key"] != key:
        _CACHE["matcher"] = EntityMatcher((i, t, list(a or [])) for i, t, a in rows)
        _CACHE["key"] = key
    return cast(EntityMatcher, _CACHE["matcher"])  # set just above, or by an earlier call with the same key


def _clean_aliases(aliases: Iterable[str]) -> list[str]:
    out: list[str] = []
    for alias in aliases:
        alias = " ".join(str(alias).split())
        if not alias:
            continue
        if len(alias) > 200:
            raise ServiceError("an alias may have at most 200 characters", field="aliases")
        if alias not in out:
            out.append(alias)
    return out


def clean_ticker(ticker: str) -> str:
    ticker = (ticker or "").strip().lstrip("$").upper()
    if not _TICKER_RE.match(ticker):
        raise ServiceError(
            f"{ticker!r} is not a ticker: 1-10 letters or digits starting with a letter, optional .X class",
            field="ticker",
        )
    return ticker


@transaction.atomic
def entity_upsert(*, ticker: str, name: str = "", aliases: Iterable[str] = (), active: bool = True) -> Entity:
    """Create or update a watched entity; the name is always an alias too."""
    ticker = clean_ticker(ticker)
    name = " ".join((name or ticker).split())[:200]
    clean = _clean_aliases([name, *aliases]) if name != ticker else _clean_aliases(aliases)
    entity, created = Entity.objects.select_for_update().get_or_create(
        ticker=ticker, defaults={"name": name, "aliases": clean, "active": active}
    )
    if not created:
        entity.name, entity.aliases, entity.active = name, clean, active
        entity.save(update_fields=["name", "aliases", "active"])
    return entity


# A watchlist for the demo data (`sentiment_demo_csv`, `sentiment_replay --demo-watchlist`): companies that
# the tweets of Twitter Financial News Sentiment mention often, with the names they go by there.
DEMO_WATCHLIST: list[tuple[str, str, list[str]]] = [
    ("BA", "Boeing", ["Boeing Co."]),
    ("TSLA", "Tesla", ["Tesla Inc."]),
    ("UBER", "Uber", []),
    ("NFLX", "Netflix", []),
    ("AMZN", "Amazon", ["Amazon.com"]),
    ("AAPL", "Apple", ["Apple Inc."]),
    ("DIS", "Disney", ["Walt Disney"]),
    ("DB", "Deutsche Bank", []),
    ("CS", "Credit Suisse", []),
    ("GS", "Goldman Sachs", ["Goldman"]),
    ("JPM", "JPMorgan", ["JPMorgan Chase", "JP Morgan"]),
    ("MSFT", "Microsoft", []),
    ("XOM", "Exxon Mobil", ["Exxon", "ExxonMobil"]),
    ("META", "Meta Platforms", ["Facebook"]),
    ("GOOGL", "Alphabet", ["Google"]),
    ("WFC", "Wells Fargo", []),
    ("SPY", "SPDR S&P 500 ETF", []),
]


def entities_ensure_demo() -> int:
    """Add the demo watchlist's entities that are missing; returns how many were created."""
    existing = set(Entity.objects.values_list("ticker", flat=True))
    created = 0
    for ticker, name, aliases in DEMO_WATCHLIST:
        if ticker not in existing:
            entity_upsert(ticker=ticker, name=name, aliases=aliases)
            created += 1
    return created
