"""Build a demo CSV for `sentiment_replay` from real tweets (Twitter Financial News Sentiment)."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sentiment.services.entities import DEMO_WATCHLIST, EntityMatcher
from apps.sentiment.services.training import DEFAULT_FILES

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Write a replayable CSV (published_at,text) of real tweets from the tweets training file that mention a "
        "company on the demo watchlist (by cashtag or name), spread at random over --hours. The company with "
        "the most bearish tweets gets a NEGATIVE BURST at the END: its bearish tweets (up to --burst-size) all "
        "fall in the last hour, while its other tweets are spread over the earlier hours, so replaying the file "
        "(`sentiment_replay FILE --speed 0 --demo-watchlist`) ends with a sentiment drop an alert rule can catch. "
        "The file is derived data: keep it out of git."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, metavar="FILE")
        parser.add_argument("--tfns", metavar="FILE", help="tweets CSV (default: DATA_DIR's sent_train.csv)")
        parser.add_argument("--hours", type=int, default=24, help="time span of the demo (default 24)")
        parser.add_argument("--burst-size", type=int, default=20)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        source = Path(opts["tfns"] or Path(settings.DATA_DIR) / DEFAULT_FILES["tfns"])
        if not source.is_file():
            raise CommandError(f"{source} does not exist: pass --tfns FILE or set DATA_DIR")
        if opts["hours"] < 2:
            raise CommandError("--hours must be at least 2")
        with source.open(encoding="utf-8", newline="") as fh:
            rows = [(r["text"].strip(), r["label"].strip()) for r in csv.DictReader(fh) if r.get("text")]
        matcher = EntityMatcher((i, t, [n, *a]) for i, (t, n, a) in enumerate(DEMO_WATCHLIST))
        tagged = [(text, label, set(matcher.match(text))) for text, label in rows]
        tagged = [t for t in tagged if t[2]]
        if not tagged:
            raise CommandError(f"no tweet in {source} mentions the demo watchlist")
        bearish = [
            sum(1 for _, label, ids in tagged if label == "0" and i in ids)
            for i in range(len(DEMO_WATCHLIST))
        ]
        target = max(range(len(DEMO_WATCHLIST)), key=lambda i: bearish[i])
        burst = [t for t in tagged if t[1] == "0" and target in t[2]][: opts["burst_size"]]
        background = [t for t in tagged if t not in burst]
        rng = random.Random(opts["seed"])  # noqa: S311 (a demo layout, not a secret)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
        span = (opts["hours"] - 1) * 3600
        timeline = [(rng.uniform(0, span), text) for text, _, _ in background]
        timeline += [(span + rng.uniform(0, 3599), text) for text, _, _ in burst]
        timeline.sort()
        out = Path(opts["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["published_at", "text"])
            for seconds, text in timeline:
                writer.writerow([(BASE_TIME + timedelta(seconds=round(seconds))).isoformat(), text])
        ticker, name, _ = DEMO_WATCHLIST[target]
        summary = {
            "out": str(out),
            "items": len(timeline),
            "hours": opts["hours"],
            "burst_ticker": ticker,
            "burst_items": len(burst),
        }
        self.stdout.write(
            f"wrote {len(timeline)} tweets over {opts['hours']} h to {out}; the last hour holds a burst of "
            f"{len(burst)} bearish tweets about {name} (${ticker})"
        )
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
