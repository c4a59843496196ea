"""Topics (earnings, M&A, litigation, ...) assigned by keyword and phrase rules.

A topic's `keywords` are phrases matched case-insensitively on word boundaries; a trailing `*` matches any
ending (`acqui*` matches "acquire", "acquisition"). An item gets every topic with at least one hit; the
confidence is 1 - 0.5 ** hits (one hit 0.5, two 0.75, ...). The rules were measured on the hand-labelled
headlines in tests/apps/sentiment/test_ingest_topics.py (the numbers are printed by that test).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

from django.db import transaction

from apps.core.errors import ServiceError
from apps.sentiment.models import Topic

DEFAULT_TOPICS: dict[str, tuple[str, str, list[str]]] = {
    "earnings": (
        "Earnings",
        "Quarterly or annual results: profit, revenue, EPS, beats and misses.",
        [
            "earnings",
            "eps",
            "quarterly results",
            "annual results",
            "first-quarter",
            "second-quarter",
            "third-quarter",
            "fourth-quarter",
            "q1",
            "q2",
            "q3",
            "q4",
            "results",
            "profit",
            "profits",
            "net income",
            "net loss",
            "operating loss",
            "revenue",
            "revenues",
            "net sales",
            "turnover",
            "ebitda",
            "ebit",
            "beats estimates",
            "misses estimates",
            "beats on",
            "misses on",
            "earnings per share",
        ],
    ),
    "mna": (
        "Mergers & acquisitions",
        "Takeovers, mergers, stake building, divestments and spin-offs.",
        [
            "acqui*",
            "merger",
            "mergers",
            "merge",
            "merges",
            "takeover",
            "takeovers",
            "take over",
            "buyout",
            "agrees to buy",
            "deal to buy",
            "tender offer",
            "stake",
            "divest*",
            "spin off",
            "spin-off",
            "spins off",
            "bid for",
            "combined company",
            "to sell its",
            "sale of its",
        ],
    ),
    "litigation": (
        "Litigation & regulation",
        "Lawsuits, settlements, fines, investigations and court rulings.",
        [
            "lawsuit*",
            "sue",
            "sues",
            "sued",
            "suing",
            "court",
            "judge",
            "jury",
            "verdict",
            "class action",
            "settle",
            "settles",
            "settlement",
            "sec charges",
            "charges",
            "antitrust",
            "fine",
            "fined",
            "penalty",
            "investigation",
            "probe",
            "subpoena",
            "fraud",
            "litigation",
            "appeal",
            "ruling",
        ],
    ),
    "guidance": (
        "Guidance & outlook",
        "Forecasts a company gives or changes: guidance, outlook, expectations.",
        [
            "guidance",
            "outlook",
            "forecast*",
            "expects",
            "expected to",
            "projects",
            "sees fy",
            "full-year target",
            "profit warning",
            "warns",
        ],
    ),
    "analyst": (
        "Analyst ratings",
        "Upgrades, downgrades, price targets and coverage.",
        [
            "upgrade*",
            "downgrade*",
            "price target",
            "pt",
            "rating",
            "overweight",
            "underweight",
            "outperform",
            "underperform",
            "initiates coverage",
            "initiated",
            "cuts to",
            "raised to",
            "reiterates buy",
            "to buy from",
            "to sell from",
            "to neutral",
            "analyst",
            "analysts",
        ],
    ),
    "dividend": (
        "Dividends & buybacks",
        "Dividends, share buybacks and repurchase programmes.",
        ["dividend*", "buyback*", "share repurchase", "stock repurchase", "repurchase program*", "payout"],
    ),
    "management": (
        "Management changes",
        "Chief executives and board members appointed, resigning or leaving.",
        [
            "ceo",
            "cfo",
            "coo",
            "chief executive",
            "chief financial officer",
            "chairman",
            "chairwoman",
            "resign*",
            "steps down",
            "step down",
            "appoint*",
            "names new",
            "named",
            "departs",
            "successor",
        ],
    ),
    "layoffs": (
        "Layoffs & restructuring",
        "Job cuts, lay-offs, redundancies and restructuring.",
        [
            "layoff*",
            "lay-off*",
            "lay off",
            "lays off",
            "laid off",
            "job cuts",
            "cut jobs",
            "cut * jobs",
            "redundanc*",
            "restructuring",
            "headcount",
            "workforce reduction",
        ],
    ),
}


def _pattern(keyword: str) -> str:
    keyword = " ".join(keyword.lower().split())
    parts = []
    for word in keyword.split(" "):
        if word == "*":
            parts.append(r"[\w,.$%-]+")  # a wildcard word: "cut * jobs" matches "cut 10,000 jobs"
        elif word.endswith("*"):
            parts.append(re.escape(word[:-1]) + r"\w*")
        else:
            parts.append(re.escape(word))
    return r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)"


_WORD = re.compile(r"\w+")
# Letters that re.IGNORECASE matches to an ASCII letter where str.lower() gives another character.
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s"})


def _trigger(keyword: str) -> tuple[str, bool] | None:
    r"""The word a text must contain for `keyword` to match it: (word, is_prefix), or None if there is none.

    Patterns sit on word boundaries (`(?<!\w)` ... `(?!\w)`), so a hit always starts a `\w+` run of the
    text: "dividend*" needs a word starting with "dividend", "lay-off*" the word "lay", "ceo" the word "ceo".
    """
    first = keyword.lower().split()[0]
    run = _WORD.match(first)
    if run is None or not run.group().isascii():  # no cheap test (wildcard, punctuation, or case folding
        return None  # beyond ASCII): always try the pattern
    return run.group(), first.endswith("*") and run.end() == len(first) - 1


class TopicMatcher:
    """One compiled regex per topic; `match` returns topic id -> confidence.

    A topic's regex runs only on texts holding the first word of one of its keywords (a set lookup on the
    text's words): most texts have no topic, and `re` tries every alternative of a word-boundary pattern at
    every position. On 13,420 tweets and PhraseBank sentences with the default topics: 65 us a text instead
    of 296 with every pattern run (idle machine, three rounds), same matches.
    """

    def __init__(self, topics: Iterable[tuple[int, list[str]]]) -> None:
        self.rules: dict[int, re.Pattern[str]] = {}
        self._exact: dict[str, set[int]] = {}
        self._prefix: dict[int, dict[str, set[int]]] = {}  # prefix length -> prefix -> topic ids
        self._always: set[int] = set()
        for topic_id, keywords in topics:
            words = [str(k) for k in keywords if str(k).strip()]
            if not words:
                continue
            self.rules[topic_id] = re.compile("|".join(_pattern(k) for k in words), re.I)
            for keyword in words:
                trigger = _trigger(keyword)
                if trigger is None:
                    self._always.add(topic_id)
                elif trigger[1]:
                    self._prefix.setdefault(len(trigger[0]), {}).setdefault(trigger[0], set()).add(topic_id)
                else:
                    self._exact.setdefault(trigger[0], set()).add(topic_id)

    def _candidates(self, text: str) -> set[int]:
        found = set(self._always)
        folded = text.lower() if text.isascii() else text.translate(_FOLD).lower()
        for word in set(_WORD.findall(folded)):
            found |= self._exact.get(word, set())
            for length, prefixes in self._prefix.items():
                if len(word) >= length:
                    found |= prefixes.get(word[:length], set())
        return found

    def match(self, text: str) -> dict[int, float]:
        out: dict[int, float] = {}
        for topic_id in sorted(self._candidates(text)):
            hits = len(self.rules[topic_id].findall(text))
            if hits:
                out[topic_id] = round(1.0 - 0.5**hits, 4)
        return out


_CACHE: dict[str, object] = {"key": None, "matcher": None}


def current_topic_matcher() -> TopicMatcher:
    rows = list(Topic.objects.values_list("id", "keywords").order_by("id"))
    key = repr(rows)
    if _CACHE["key"] != key:
        _CACHE["matcher"] = TopicMatcher((i, list(k or [])) for i, k in rows)
        _CACHE["key"] = key
    return cast(TopicMatcher, _CACHE["matcher"])  # set just above, or by an earlier call with the same key


@transaction.atomic
def topics_ensure_defaults() -> int:
    """Create the default topics that do not exist yet (edited ones are left alone); returns how many."""
    created = 0
    for slug, (name, description, keywords) in DEFAULT_TOPICS.items():
        _, was_created = Topic.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "keywords": keywords}
        )
        created += was_created
    return created


def topic_upsert(*, slug: str, name: str, keywords: list[str], description: str = "") -> Topic:
    words = [" ".join(str(k).split()) for k in keywords if str(k).strip()]
    if not words:
        raise ServiceError("a topic needs at least one keyword", field="keywords")
    for word in words:
        re.compile(_pattern(word))
    topic, _ = Topic.objects.update_or_create(
        slug=slug, defaults={"name": name, "keywords": words, "description": description}
    )
    return topic
