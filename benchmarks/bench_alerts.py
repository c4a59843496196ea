"""Alert-rule evaluation speed: one full pass of every rule over 1,000 entities (target: <= 1 s).

Builds a throw-away SQLite database in a temporary directory (a child process, so the project's database is
never touched): 1,000 active entities with 48 hours of hour buckets each (baselines in the layout of
services/series.py), 10 topics, 2% of the entities turning in the current hour (a sentiment drop with the
items behind it, and a volume burst), and the rules an operator would have: one "every entity" rule per
condition, 50 per-entity rules and 10 topic rules. It then times

- `first_pass_s`: the pass that opens the alerts (with their items and notifications),
- `steady_pass_s`: the median of later passes (open alerts are updated, nothing new fires),

counts the queries of each, and compares with a naive pass in the same run (one bucket query per rule and
scope, as a straightforward implementation would do), reported as `speedup_vs_naive`.

    .venv/bin/python -m benchmarks.bench_alerts [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0
ALPHA = 0.08
STATS = ("count", "mean_score", "negative_share", "positive_share")


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark in a child process against a fresh temporary SQLite database."""
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "apps.settings",
            "VAR_DIR": tmp,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "MODEL_STORE": f"{tmp}/models",
            "CELERY_BROKER_URL": "filesystem://",
            "LOG_LEVEL": "WARNING",
        }
        args = [sys.executable, "-m", "benchmarks.bench_alerts", "--child", *(["--quick"] if quick else [])]
        out = subprocess.run(
            args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1200, check=False
        )
    if out.returncode != 0:
        raise RuntimeError(f"bench_alerts failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the child process ----------------------------------------------------------------------------------
def _ewma(history: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"alpha": ALPHA, "gap": 0}
    for stat in STATS:
        ewma, var, n = 0.0, 0.0, 0
        for row in history:
            x = row[stat]
            if n == 0:
                ewma = x
            else:
                diff = x - ewma
                ewma += ALPHA * diff
                var = (1 - ALPHA) * (var + diff * ALPHA * diff)
            n += 1
        out[stat] = {"ewma": ewma, "ewmvar": var, "n": n}
    return out


def _hour_rows(rng: Any, hours: int, turning: bool) -> list[dict[str, float]]:
    rows = []
    for h in range(hours):
        count = max(1, int(rng.gauss(10, 2)))
        negative = min(count, max(0, int(rng.gauss(2, 1))))
        positive = min(count - negative, max(0, int(rng.gauss(3, 1))))
        mean = (positive - negative) / count * 0.6 + rng.gauss(0, 0.03)
        if turning and h == hours - 1:
            count, negative, positive, mean = 40, 34, 1, -0.65
        rows.append({"count": count, "negative": negative, "positive": positive, "mean_score": mean})
    for row in rows:
        row["negative_share"] = row["negative"] / row["count"]
        row["positive_share"] = row["positive"] / row["count"]
    return rows


def _buckets(rows: list[dict[str, float]], first: datetime, **scope: Any) -> list[Any]:
    from apps.sentiment.models import Bucket

    return [
        Bucket(
            granularity="hour",
            start=first + timedelta(hours=i),
            count=int(r["count"]),
            score_sum=r["mean_score"] * r["count"],
            negative=int(r["negative"]),
            positive=int(r["positive"]),
            mean_score=r["mean_score"],
            negative_share=r["negative_share"],
            positive_share=r["positive_share"],
            baseline=_ewma(rows[:i]),
            **scope,
        )
        for i, r in enumerate(rows)
    ]


def _build(n_entities: int, hours: int, now: datetime) -> dict[str, int]:
    import random

    from apps.core.models import ModelVersion
    from apps.sentiment.models import AlertRule, Bucket, Entity, Item, ItemEntity, Score, Source, Topic

    rng = random.Random(7)
    entities = Entity.objects.bulk_create(
        [Entity(ticker=f"T{i:04d}", name=f"Company {i}") for i in range(n_entities)], batch_size=500
    )
    topics = Topic.objects.bulk_create([Topic(slug=f"topic-{i}", name=f"Topic {i}") for i in range(10)])
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    turning = set(rng.sample(range(n_entities), max(1, n_entities // 50)))
    buckets = []
    for i, ent in enumerate(entities):
        buckets += _buckets(_hour_rows(rng, hours, i in turning), first, entity=ent)
    for top in topics:
        buckets += _buckets(_hour_rows(rng, hours, False), first, topic=top)
    Bucket.objects.bulk_create(buckets, batch_size=2000)

    source = Source.objects.create(name="bench", kind="push")
    version = ModelVersion.objects.create(task="sentiment", version=1, artifact_dir="/nonexistent")
    hour = first + timedelta(hours=hours - 1)
    items, links, scores = [], [], []
    for i in sorted(turning):
        for k in range(40):
            text = f"{entities[i].ticker} item {k}"
            items.append(
                Item(
                    source=source,
                    url=f"https://news.example/{i}/{k}",
                    title=text,
                    text=text,
                    text_hash=hashlib.sha256(text.encode()).hexdigest(),
                    published_at=min(now, hour + timedelta(seconds=20 * k)),
                )
            )
    Item.objects.bulk_create(items, batch_size=1000)
    items = list(Item.objects.order_by("pk"))
    by_ticker = {e.ticker: e for e in entities}
    for item in items:
        links.append(ItemEntity(item=item, entity=by_ticker[item.title.split()[0]]))
        score = -0.9 + 0.02 * int(item.title.split()[-1])
        scores.append(Score(item=item, model_version=version, label="negative", p_negative=-score,
                            p_neutral=1 + score, p_positive=0.0, score=score))  # fmt: skip
    ItemEntity.objects.bulk_create(links, batch_size=1000)
    Score.objects.bulk_create(scores, batch_size=1000)

    rules = [
        AlertRule(name=f"every entity: {c}", condition=c, threshold=4.0) for c in AlertRule.Condition.values
    ]
    rules += [
        AlertRule(
            name=f"{entities[i].ticker} drop", entity=entities[i], condition="score_drop", threshold=3.0
        )
        for i in rng.sample(range(n_entities), min(50, n_entities))
    ]
    rules += [AlertRule(name=f"{t.slug} volume", topic=t, condition="volume_spike") for t in topics]
    AlertRule.objects.bulk_create(rules)
    return {"entities": n_entities, "buckets": len(buckets), "rules": len(rules), "turning": len(turning)}


def _naive_pass(now: datetime) -> int:
    """What a straightforward implementation does: one query per rule and scope (no writes)."""
    from apps.sentiment import detection
    from apps.sentiment.models import AlertRule, Bucket, Entity

    fired = 0
    for rule in AlertRule.objects.filter(enabled=True):
        spec = detection.RuleSpec.of(rule)
        start = detection.window_start(spec, now)
        if rule.entity_id or rule.topic_id:
            scopes = [(rule.entity_id, rule.topic_id)]
        else:
            scopes = [(e, None) for e in Entity.objects.filter(active=True).values_list("id", flat=True)]
        for entity_id, topic_id in scopes:
            qs = Bucket.objects.filter(granularity="hour", start__gte=start, start__lte=now, entity_id=entity_id,
                                       topic_id=topic_id).order_by("start")  # fmt: skip
            rows = [
                detection.BucketRow(b.start, b.count, b.score_sum, b.negative, b.positive, b.baseline)
                for b in qs
            ]
            fired += detection.evaluate(spec, rows, start=start, end=now).fired
    return fired


def _timed(fn: Any) -> tuple[float, int, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - started
    return elapsed, len(ctx.captured_queries), result


def child(quick: bool) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from apps.sentiment.models import Alert
    from apps.sentiment.services.alerts import alerts_evaluate

    call_command("migrate", verbosity=0)
    now = timezone.now()
    built = _build(200 if quick else 1000, 24 if quick else 48, now)

    first_s, first_q, first = _timed(lambda: alerts_evaluate(at=now))
    steady = [_timed(lambda k=k: alerts_evaluate(at=now + timedelta(seconds=1 + k))) for k in range(3)]
    naive_s, naive_q, naive_fired = _timed(lambda: _naive_pass(now))
    steady_s = statistics.median(s for s, _, _ in steady)
    return {
        **built,
        "scopes_evaluated": first.scopes,
        "alerts_fired": first.fired,
        "open_alerts": Alert.objects.exclude(status="resolved").count(),
        "first_pass_s": round(first_s, 4),
        "first_pass_queries": first_q,
        "steady_pass_s": round(steady_s, 4),
        "steady_pass_queries": steady[-1][1],
        "naive_pass_s": round(naive_s, 4),
        "naive_pass_queries": naive_q,
        "naive_agrees": naive_fired == first.fired,
        "speedup_vs_naive": round(naive_s / max(first_s, 1e-9), 2),
        "target_s": TARGET_S,
        "meets_target": max(first_s, steady_s) <= TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    figures = child(args.quick) if args.child else run(args.quick)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
