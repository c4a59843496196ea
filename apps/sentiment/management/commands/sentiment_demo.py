"""The whole demo in one command (`make demo`): a watchlist, 24 h of real tweets, a rule, and a fired alert."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.errors import ServiceError
from apps.core.selectors import active_version, latest_job
from apps.sentiment import selectors
from apps.sentiment.models import Alert, AlertRule
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services.training import TASK, bootstrap_training

DEMO_RULE = {
    "condition": AlertRule.Condition.SCORE_DROP,
    "threshold": 3.0,
    # two hour buckets: the burst fills the last hour, which straddles the top of the clock's hour whenever
    # the demo runs (a 60 minute window is the current hour bucket alone, minutes old at 17:05)
    "window_minutes": 120,
    "min_count": 5,
    "cooldown_minutes": 240,
    "severity": AlertRule.Severity.WARNING,
}


class Command(BaseCommand):
    help = (
        "Load the demo: wait for the first sentiment model (make run trains it), write 24 h of real tweets that "
        "name the demo watchlist with a bearish burst in the last hour, replay them ending now with the gaps "
        "kept, score them here, add a rule for the burst's company and evaluate it: the alert it fires is printed "
        "with its address. Running it again adds nothing twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait-minutes", type=float, default=30.0, help="how long to wait for the model")
        parser.add_argument("--tfns", metavar="FILE", help="tweets CSV (default: DATA_DIR's sent_train.csv)")
        parser.add_argument(
            "--out", metavar="FILE", help="where the demo CSV goes (default: VAR_DIR/demo.csv)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        self._wait_for_model(opts["wait_minutes"])
        ticker, path = self._write_csv(opts)
        self.stdout.write(f"replaying {path} (24 h ending now), scoring here…")
        replayed = self._quiet("sentiment_replay", str(path), "--speed", "0", "--demo-watchlist", "--inline")
        self.stdout.write(replayed.strip().splitlines()[-1])
        rule = self._rule(ticker)
        alert = self._alert(rule)
        self.stdout.write(
            self.style.SUCCESS(f"alert fired: {settings.SITE_URL}/sentiment/alerts/{alert.pk}/")
        )
        self.stdout.write(
            f"the rule: {settings.SITE_URL}/sentiment/rules/{rule.pk}/ (Backtest shows 30 days)"
        )

    def _wait_for_model(self, minutes: float) -> None:
        deadline = time.monotonic() + minutes * 60
        said = ""
        while active_version(TASK) is None:
            job = bootstrap_training() or latest_job(kind="sentiment_train")
            line = f"waiting for the first sentiment model: job #{job.pk} {job.status}" if job else ""
            if job and job.total_steps:
                line += f", step {job.step}/{job.total_steps}"
            if line != said:
                self.stdout.write(line + " (make run's workers train it)")
                said = line
            if time.monotonic() > deadline:
                raise CommandError(
                    f"no active sentiment model after {minutes:g} min: is `make run` running (its training "
                    "worker trains the first model)? Watch it at /jobs/"
                )
            time.sleep(5)

    def _write_csv(self, opts: dict[str, Any]) -> tuple[str, Path]:
        path = Path(opts["out"] or Path(settings.VAR_DIR) / "demo.csv")
        extra = ["--tfns", opts["tfns"]] if opts["tfns"] else []
        written = self._quiet("sentiment_demo_csv", "--out", str(path), "--json", *extra)
        summary = json.loads(written.strip().splitlines()[-1])
        self.stdout.write(
            f"wrote {summary['items']} tweets; the last hour holds {summary['burst_items']} bearish ones about "
            f"${summary['burst_ticker']}"
        )
        return str(summary["burst_ticker"]), path

    def _rule(self, ticker: str) -> AlertRule:
        entity = selectors.entity_by_ticker(ticker)
        if entity is None:
            raise CommandError(f"the demo watchlist has no {ticker}")
        name = f"Demo: {ticker} sentiment drop"
        rule = AlertRule.objects.filter(name=name).first()
        if rule is None:
            try:
                fields = {"name": name, "enabled": True, "entity": entity, "topic": None, "channels": []}
                rule = alert_services.rule_create(user=None, **fields, **DEMO_RULE)
            except ServiceError as exc:
                raise CommandError(exc.message) from None
            self.stdout.write(f"added the rule {name!r}: mean score 3 baseline deviations below normal")
        return rule

    def _alert(self, rule: AlertRule) -> Alert:
        alert_services.alerts_evaluate(rule_ids=[rule.pk])
        alert = rule.alerts.order_by("-fired_at").first()
        if alert is None:
            raise CommandError(
                f"{rule.name} fired nothing: the burst may be older than its {rule.window_minutes} min window "
                "(run this again) or the model scores it mildly; see the rule's Backtest"
            )
        return alert

    def _quiet(self, command: str, *args: str) -> str:
        out = io.StringIO()
        try:
            call_command(command, *args, stdout=out, stderr=io.StringIO())
        except CommandError as exc:
            raise CommandError(f"{command}: {exc}") from None
        return out.getvalue()
