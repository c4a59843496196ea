"""Management commands that need no model: replay, the demo CSV, bootstrap."""

from __future__ import annotations

import csv
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.core.models import TrainingJob
from apps.sentiment.models import Entity, Item, Topic

pytestmark = pytest.mark.django_db


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["published_at", "text"])
        writer.writerows(rows)
    return path


def test_replay_shifts_times_to_now_and_divides_gaps_by_speed(tmp_path: Path) -> None:
    path = _write(tmp_path / "demo.csv", [
        ("2024-01-01T00:02:00Z", "third: Boeing deliveries halved"),
        ("2024-01-01T00:00:00Z", "first: Boeing wins an order"),
        ("2024-01-01T00:01:00Z", "second: Boeing shares flat"),
    ])  # fmt: skip
    before = timezone.now()
    started = time.monotonic()

    call_command("sentiment_replay", str(path), "--speed", "120", "--demo-watchlist")

    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 6  # 2 minutes of data at 120x: one second
    times = dict(Item.objects.values_list("text", "published_at"))
    first = times["first: Boeing wins an order"]
    assert before <= first <= before + timedelta(seconds=2)
    assert times["second: Boeing shares flat"] - first == pytest.approx(
        timedelta(seconds=0.5), abs=timedelta(seconds=0.3)
    )
    assert times["third: Boeing deliveries halved"] - first == pytest.approx(
        timedelta(seconds=1), abs=timedelta(seconds=0.3)
    )
    assert Item.objects.filter(itementity__entity__ticker="BA").count() == 3  # the demo watchlist linked them
    assert Topic.objects.exists()


def test_replay_at_speed_zero_keeps_the_gaps_and_ends_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path / "demo.csv", [("2024-01-01T00:00:00Z", "old news"), ("2024-01-01T05:00:00Z", "new news")]
    )
    before = timezone.now()
    call_command("sentiment_replay", str(path), "--speed", "0", "--json")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"items": 2, "created": 2, "duplicates": 0, "rejected": 0}
    times = dict(Item.objects.values_list("text", "published_at"))
    assert times["new news"] - times["old news"] == timedelta(hours=5)
    assert before <= times["new news"] <= timezone.now()

    call_command("sentiment_replay", str(path), "--speed", "0", "--json")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["duplicates"] == 2


def test_replay_refuses_a_file_with_bad_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", [("2024-01-01T00:00:00Z", "fine"), ("last tuesday", "bad date")])
    with pytest.raises(CommandError, match="row 3: published_at 'last tuesday' is not a date-time"):
        call_command("sentiment_replay", str(path), "--speed", "0")
    assert not Item.objects.exists()


def test_replay_refuses_an_unterminated_quote_instead_of_merging_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(
        'published_at,text\n2024-01-01T00:00:00Z,fine\n2024-01-01T01:00:00Z,"never closed\n'
        "2024-01-01T02:00:00Z,swallowed\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError, match="row 3: line 3: unterminated quote"):
        call_command("sentiment_replay", str(path), "--speed", "0")
    assert not Item.objects.exists()


def test_demo_csv_puts_a_negative_burst_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tweets = tmp_path / "sent_train.csv"
    rows = [(f"Boeing 737 deliveries fall again, report {i}", "0") for i in range(6)]
    rows += [(f"Boeing wins order number {i}", "1") for i in range(4)]
    rows += [(f"$TSLA Tesla recalls cars in batch {i}", "0") for i in range(3)]
    rows += [("Markets are closed for the holiday", "2")]  # mentions nobody: left out
    with tweets.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])
    out = tmp_path / "demo.csv"

    call_command("sentiment_demo_csv", "--tfns", str(tweets), "--out", str(out), "--hours", "6",
                 "--burst-size", "5", "--json")  # fmt: skip

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["burst_ticker"] == "BA" and summary["burst_items"] == 5 and summary["items"] == 13
    with out.open(encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [r["published_at"] for r in written] == sorted(r["published_at"] for r in written)
    last_hour = [r["text"] for r in written if r["published_at"] >= "2024-01-01T05:00:00"]
    assert len(last_hour) == 5 and all("deliveries fall" in t for t in last_hour)


def test_bootstrap_command_queues_the_first_model_once(capsys: pytest.CaptureFixture[str], settings) -> None:  # type: ignore[no-untyped-def]
    from apps.sentiment.services.training import DEFAULT_FILES

    if not (Path(settings.DATA_DIR) / DEFAULT_FILES["tfns"]).is_file():
        pytest.skip("no tweets under DATA_DIR")
    call_command("sentiment_bootstrap", "--json")
    call_command("sentiment_bootstrap", "--json")
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[1])["job_id"] is not None and json.loads(lines[-1])["job_id"] is None
    assert TrainingJob.objects.filter(kind="sentiment_train").count() == 1
    assert Topic.objects.filter(slug="earnings").exists()
    assert not Entity.objects.exists()


def test_sentiment_train_reports_bad_files_readably(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        call_command("sentiment_train", "--tfns", str(tmp_path / "missing.csv"))
    assert not TrainingJob.objects.exists()


def test_sentiment_train_refuses_switches_that_would_do_nothing(tmp_path: Path) -> None:
    tweets = tmp_path / "tweets.csv"
    tweets.write_text("text,label\nStocks up,1\nStocks down,0\n", encoding="utf-8")
    with pytest.raises(CommandError, match=r"no effect on a soup .*--no-soup"):
        call_command("sentiment_train", "--tfns", str(tweets), "--no-class-weights")
    assert not TrainingJob.objects.exists()


def test_the_demo_command_ends_with_a_fired_alert_and_adds_nothing_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from apps.core.services.registry import model_version_register
    from apps.sentiment.models import Alert, AlertRule
    from tests.apps.sentiment.scoring_data import train_fake

    model_version_register(task="sentiment", artifact_dir=train_fake(tmp_path / "model"))
    tweets = tmp_path / "sent_train.csv"
    rows = [(f"Boeing shares plunge on a big loss, report {i}", "0") for i in range(10)]
    rows += [(f"Boeing holds steady in quiet trading, note {i}", "2") for i in range(60)]
    with tweets.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])

    call_command(
        "sentiment_demo", "--tfns", str(tweets), "--out", str(tmp_path / "demo.csv"), "--wait-minutes", "0"
    )
    out = capsys.readouterr().out

    rule = AlertRule.objects.get(name="Demo: BA sentiment drop")
    alert = Alert.objects.get(rule=rule)
    assert f"/sentiment/alerts/{alert.pk}/" in out and Item.objects.count() == 70
    call_command(
        "sentiment_demo", "--tfns", str(tweets), "--out", str(tmp_path / "demo.csv"), "--wait-minutes", "0"
    )
    assert (Item.objects.count(), AlertRule.objects.count(), Alert.objects.count()) == (70, 1, 1)


def test_the_demo_command_says_what_to_do_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is `make run` running"):
        call_command("sentiment_demo", "--wait-minutes", "0")
    assert TrainingJob.objects.filter(kind="sentiment_train").exists()  # the first model is queued
