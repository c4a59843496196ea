"""Replay a CSV of timestamped items into the pipeline at a chosen speed (demo data, load tests)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment.models import Source
from apps.sentiment.services import ingest, uploads
from apps.sentiment.services.entities import entities_ensure_demo
from apps.sentiment.services.topics import topics_ensure_defaults


class Command(BaseCommand):
    help = (
        "Replay FILE (a CSV with a text or title column and published_at; the upload format) into ingestion. "
        "Times are shifted so the first item is published now and the gaps between items are divided by --speed "
        "(60: an hour of data in a minute); each item is ingested when its shifted time comes. --speed 0 ingests "
        "everything at once, keeping the original gaps but ending now. Scoring is queued to the inference "
        "workers, or done here with --inline (which also evaluates the alert rules after each batch). Items already stored are skipped as duplicates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE")
        parser.add_argument(
            "--speed", type=float, default=60.0, help="time compression factor; 0 = no waiting"
        )
        parser.add_argument("--source", default="", help="source name (default: replay:<file name>)")
        parser.add_argument("--batch", type=int, default=100, help="most items ingested in one batch")
        parser.add_argument("--encoding", default="utf-8", choices=list(uploads.UPLOAD_ENCODINGS))
        parser.add_argument(
            "--demo-watchlist", action="store_true", help="add the demo entities and topics first"
        )
        parser.add_argument(
            "--inline", action="store_true", help="score in this process (no inference worker)"
        )
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["speed"] < 0 or opts["batch"] < 1:
            raise CommandError("--speed must be >= 0 and --batch >= 1")
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"{path} does not exist")
        try:
            rows = _read(path, opts["encoding"])
            if opts["demo_watchlist"]:
                entities_ensure_demo()
                topics_ensure_defaults()
            source = ingest.source_get_or_create(
                name=opts["source"] or f"replay:{path.name}"[:200], kind=Source.Kind.REPLAY
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        if not rows:
            raise CommandError(f"{path} has no rows to replay")
        report = self._replay(source, rows, opts)
        summary = {"items": len(rows), **{k: v for k, v in report.as_dict().items() if k != "notes"}}
        summary["rejected"] = len(report.rejected)
        self.stdout.write(
            f"replayed {len(rows)} rows: {report.created} new, {report.duplicates} duplicates, "
            f"{len(report.rejected)} rejected"
        )
        for index, reason in report.rejected[:10]:
            self.stdout.write(f"  row {index}: {reason}")
        if opts["json"]:
            self.stdout.write(json.dumps(summary))

    def _replay(
        self, source: Source, rows: list[tuple[int, ingest.ItemRecord, datetime]], opts: dict[str, Any]
    ) -> ingest.IngestReport:
        speed, batch = opts["speed"], opts["batch"]
        first, last = rows[0][2], rows[-1][2]
        start = timezone.now()
        total = ingest.IngestReport()
        i = 0
        while i < len(rows):
            now = timezone.now()
            chunk: list[tuple[int, ingest.ItemRecord]] = []
            while i < len(rows) and len(chunk) < batch:
                number, record, when = rows[i]
                shifted = now - (last - when) if speed == 0 else start + (when - first) / speed
                if shifted > now:
                    break
                chunk.append((number, replace(record, published_at=shifted)))
                i += 1
            if chunk:
                part = ingest.items_ingest(
                    source=source, records=[r for _, r in chunk], now=now, score=not opts["inline"]
                )
                _fold(total, part, [n for n, _ in chunk])
                if opts["inline"] and part.item_ids:
                    _score_and_evaluate(part.item_ids)
                self.stderr.write(f"{i}/{len(rows)} rows: {total.created} new, {total.duplicates} duplicates")
            elif i < len(rows):
                due = start + (rows[i][2] - first) / speed
                time.sleep(min(1.0, max(0.01, (due - timezone.now()).total_seconds())))
        return total


def _read(path: Path, encoding: str) -> list[tuple[int, ingest.ItemRecord, datetime]]:
    """(row number, record, original time) sorted by time; rows without a time keep the previous row's."""
    text = uploads.decode_upload(path.read_bytes(), encoding)
    report = ingest.IngestReport()
    rows: list[tuple[int, ingest.ItemRecord, datetime]] = []
    previous = timezone.now() - timedelta(days=36500)
    for number, record in uploads.csv_records(
        text, report, max_rows=None
    ):  # strict: a broken quote is an error
        when = record.published_at or previous
        if timezone.is_naive(when):
            when = when.replace(tzinfo=UTC)
        previous = when
        rows.append((number, record, when))
    if report.rejected:
        number, reason = report.rejected[0]
        raise ServiceError(f"row {number}: {reason} ({len(report.rejected)} bad rows in all)")
    rows.sort(key=lambda r: r[2])
    return rows


def _score_and_evaluate(item_ids: list[int]) -> None:
    """--inline: what the inference worker and the alert task would do, in this process."""
    from apps.sentiment.services.alerts import alerts_evaluate
    from apps.sentiment.services.scoring import items_score

    report = items_score(item_ids=item_ids)
    if report.entity_ids or report.topic_ids:
        alerts_evaluate(entity_ids=report.entity_ids, topic_ids=report.topic_ids)


def _fold(total: ingest.IngestReport, part: ingest.IngestReport, numbers: list[int]) -> None:
    total.created += part.created
    total.duplicates += part.duplicates
    total.item_ids += part.item_ids
    total.rejected += [(numbers[i], reason) for i, reason in part.rejected]
