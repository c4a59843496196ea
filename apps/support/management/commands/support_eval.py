"""Evaluate support answering on StackFAQ: the widget's own retrieve + decide over a throw-away knowledge base."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.support.answering import (
    DEFAULT_THRESHOLD,
    FEATURES,
    calibrated,
    decide,
    features,
    fit_logistic,
    threshold_for_rate,
)
from apps.support.retrieval import Candidate, passage_metadata, passage_text, retrieve

UNKNOWN_SEED = 0  # the evaluation's left-out threads; calibration fits on other seeds (FIT_SEEDS)
FIT_SEEDS = (1, 2, 3, 4, 5)
FIT_ANSWER_RATE = 0.90
KB_ID = 0
INDEX_NAME = "support-eval"
DEPTH = 10  # mrr@10


@dataclass(frozen=True)
class Thread:
    number: int
    thread_id: str
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    query_id: str
    thread_id: str
    text: str

    @property
    def half(self) -> str:
        """ "tuning" or "evaluation", by the parity of the query id's sha256 (a fixed 50/50 split)."""
        digest = int(hashlib.sha256(self.query_id.encode()).hexdigest(), 16)
        return "tuning" if digest % 2 == 0 else "evaluation"


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None


def load_threads(directory: Path) -> list[Thread]:
    answers: dict[str, list[tuple[int, str]]] = {}
    for row in _rows(directory / "faq_answers.csv"):
        answers.setdefault(row["thread_id"], []).append((int(row["answer_rank"]), row["answer"]))
    questions = _rows(directory / "faq_questions.csv")
    return [
        Thread(
            n,
            row["thread_id"],
            row["question"],
            tuple(a for _, a in sorted(answers.get(row["thread_id"], []))),
        )
        for n, row in enumerate(questions)
    ]


def load_queries(path: Path) -> list[Query]:
    rows = _rows(path)
    if rows and not {"query_id", "thread_id", "query"} <= set(rows[0]):
        raise CommandError(f"{path} needs the columns query_id,thread_id,rephrasing_set,query")
    return [Query(r["query_id"], r["thread_id"], r["query"]) for r in rows if r["query"].strip()]


def left_out(threads: Sequence[Thread], share: float, seed: int) -> set[str]:
    """The thread ids of a seeded `share` of the threads (none for share 0)."""
    ids = sorted(t.thread_id for t in threads)
    rng = random.Random(seed)  # noqa: S311  # nosec B311 - a reproducible split, not a secret
    return set(rng.sample(ids, round(share * len(ids)))) if share > 0 else set()


def passages(thread: Thread) -> list[tuple[str, str, dict[str, Any], str]]:
    """(index id, indexed text, metadata, stored text) for a thread: its question as a passage of its own (a
    short paraphrase target, nothing to quote) and each answer under the question as its title."""

    def meta(heading: str) -> dict[str, Any]:
        return passage_metadata(
            document=thread.number,
            kb=KB_ID,
            visibility="public",
            kind="passage",
            title=thread.question,
            heading=heading,
        )

    rows = [(f"q-{thread.number}", passage_text(title=thread.question, heading="", text=""), meta(""), "")]
    for rank, answer in enumerate(thread.answers):
        text = passage_text(title=thread.question, heading="", text=answer)
        rows.append((f"a-{thread.number}-{rank}", text, meta(""), answer))
    return rows


def build_index(threads: Iterable[Thread]) -> tuple[Any, dict[str, str]]:
    """An in-memory ml.api index of the threads (never saved) and the stored text of each passage."""
    from ml import api

    index = api.index_create(INDEX_NAME)
    return index, add_threads(index, threads)


def add_threads(index: Any, threads: Iterable[Thread]) -> dict[str, str]:
    rows = [row for thread in threads for row in passages(thread)]
    index.add([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    return {r[0]: r[3] for r in rows}


def _ranked(candidates: Sequence[Candidate], threads: Sequence[Thread]) -> list[str]:
    return [threads[c.document].thread_id for c in candidates]


def ask(
    index: Any, texts: dict[str, str], queries: Sequence[Query], threads: Sequence[Thread], threshold: float
) -> list[dict[str, Any]]:
    """Each query through the widget's path: retrieve (public only) and decide."""
    out = []
    for q in queries:
        candidates = retrieve(index, q.text, public_only=True, k=DEPTH)
        decision = decide(candidates, threshold=threshold, texts=texts)
        ranked = _ranked(candidates, threads)
        out.append(
            {
                "query": q,
                "ranked": ranked,
                "answered": decision.answered,
                "right": decision.answered
                and decision.document is not None
                and threads[decision.document].thread_id == q.thread_id,
                "features": features(candidates[0]) if candidates else None,
                "top_right": bool(ranked) and ranked[0] == q.thread_id,
            }
        )
    return out


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def summarise(results: Sequence[dict[str, Any]], unknown: set[str]) -> dict[str, Any]:
    from ml.api import hit_at_k, mrr_at_k

    known = [r for r in results if r["query"].thread_id not in unknown]
    ranked = [r["ranked"] for r in known]
    relevant = [{r["query"].thread_id} for r in known]
    answered = [r for r in results if r["answered"]]
    out: dict[str, Any] = {
        "n": len(results),
        "hit@1": round(hit_at_k(ranked, relevant, 1), 4),
        "hit@5": round(hit_at_k(ranked, relevant, 5), 4),
        "mrr@10": round(mrr_at_k(ranked, relevant, 10), 4),
        "answer_rate": _share(len(answered), len(results)),
        "precision_answered": _share(sum(r["right"] for r in answered), len(answered)),
    }
    if unknown:
        strangers = [r for r in results if r["query"].thread_id in unknown]
        known_answered = [r for r in known if r["answered"]]
        out.update(
            n_known=len(known),
            n_unknown=len(strangers),
            answer_rate_known=_share(len(known_answered), len(known)),
            precision_answered_known=_share(sum(r["right"] for r in known_answered), len(known_answered)),
            decline_rate_unknown=_share(sum(not r["answered"] for r in strangers), len(strangers)),
        )
    return out


class Command(BaseCommand):
    help = (
        "Evaluate support retrieval and answering on StackFAQ: a throw-away knowledge base (one document per "
        "thread: its question as a passage, and each answer under it) is built in memory, every query goes "
        "through the widget's retrieve + decide, and the last line is JSON: n, hit@1, hit@5, mrr@10, "
        "answer_rate, precision_answered, on all queries and on each half of the fixed 50/50 query split. "
        "--unknown-share S leaves a seeded share of the threads out of the knowledge base. --fit refits the "
        "calibration on the tuning half and prints the constants for apps/support/answering.py."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stackfaq", metavar="DIR", required=True)
        parser.add_argument("--queries", metavar="FILE", help="default: DIR/queries.csv")
        parser.add_argument("--unknown-share", type=float, default=0.0, metavar="S")
        parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
        parser.add_argument("--fit", action="store_true", help="refit the calibration on the tuning half")
        parser.add_argument("--json", action="store_true", help="print only the JSON line")

    def handle(self, *args: Any, **opts: Any) -> None:
        from ml import api

        api.apply_thread_setting()
        directory = Path(opts["stackfaq"])
        share = float(opts["unknown_share"])
        if not 0 <= share < 1:
            raise CommandError("--unknown-share is a share of the threads, 0 <= S < 1")
        threads = load_threads(directory)
        queries = load_queries(Path(opts["queries"]) if opts["queries"] else directory / "queries.csv")
        # The index lives in memory only (never index_save'd): nothing is left behind in the model store.
        if opts["fit"]:
            result = self._fit(threads, queries)
        else:
            result = self._evaluate(threads, queries, share, opts["threshold"])
        if not opts["json"]:
            for key, value in result.items():
                self.stdout.write(f"{key:>26}: {value}")
        self.stdout.write(json.dumps(result))

    def _evaluate(
        self, threads: list[Thread], queries: list[Query], share: float, threshold: float
    ) -> dict[str, Any]:
        unknown = left_out(threads, share, UNKNOWN_SEED)
        index, texts = build_index(t for t in threads if t.thread_id not in unknown)
        results = ask(index, texts, queries, threads, threshold)
        summary = summarise(results, unknown)
        for half in ("tuning", "evaluation"):
            summary[f"{half}_half"] = summarise([r for r in results if r["query"].half == half], unknown)
        return {**summary, "unknown_share": share, "threshold": threshold}

    def _fit(self, threads: list[Thread], queries: list[Query]) -> dict[str, Any]:
        tuning = [q for q in queries if q.half == "tuning"]
        rows: list[tuple[float, ...]] = []
        labels: list[bool] = []
        known: list[int] = []
        index, texts = build_index(threads)
        for seed in FIT_SEEDS:
            unknown = left_out(threads, 0.2, seed)
            gone = [t for t in threads if t.thread_id in unknown]
            index.delete([row[0] for t in gone for row in passages(t)])
            results = ask(index, texts, tuning, threads, threshold=1.1)
            add_threads(index, gone)  # back for the next seed
            for r in results:
                if r["features"] is not None:
                    rows.append(r["features"])
                    labels.append(r["top_right"])
                    known.append(r["query"].thread_id not in unknown)
        intercept, weights = fit_logistic(rows, labels)
        scores = [calibrated(x, intercept=intercept, weights=weights) for x in rows]
        threshold = threshold_for_rate([s for s, k in zip(scores, known, strict=True) if k], FIT_ANSWER_RATE)
        return {
            "features": list(FEATURES),
            "intercept": round(intercept, 4),
            "weights": [round(w, 4) for w in weights],
            "threshold": threshold,
            "rows": len(rows),
        }
