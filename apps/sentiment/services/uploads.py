"""Bulk ways in: CSV upload (whole-file checks, then row by row) and the push API (JSON batches).

Both end in `ingest.items_ingest`, with its contract: a bad row or item is rejected with its number and a
reason and never stops the others; a problem with the whole file or request stores nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment.models import Source
from apps.sentiment.services.ingest import IngestReport, ItemRecord, items_ingest, source_get_or_create

# --- CSV upload -----------------------------------------------------------------------------------------
UPLOAD_MAX_BYTES = 50 * 1024 * 1024
UPLOAD_MAX_ROWS = 200_000
UPLOAD_BATCH = 1000
UPLOAD_ENCODINGS = ("utf-8", "latin-1")
_COLUMN_ALIASES = {
    "text": "text",
    "body": "text",
    "content": "text",
    "title": "title",
    "headline": "title",
    "url": "url",
    "link": "url",
    "published_at": "published_at",
    "published": "published_at",
    "date": "published_at",
    "time": "published_at",
    "timestamp": "published_at",
    "language": "language",
    "lang": "language",
    "id": "external_id",
    "external_id": "external_id",
}


def parse_when(raw: str | float) -> datetime | None:
    """ISO 8601 ("2024-05-01T09:30:00Z", "2024-05-01 09:30"), a date, or Unix seconds (naive = UTC); None if blank.

    A number (from JSON) is Unix seconds, from 0 to UNIX_SECONDS_MAX. Raises ValueError for anything else.
    """
    from django.utils.dateparse import parse_date, parse_datetime

    if isinstance(raw, int | float):
        return _from_unix_seconds(raw)
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.isprintable():  # a NUL or a lone surrogate; Python's fromisoformat stops at a NUL
        raise ValueError(f"published_at {raw[:40]!r} is not a date-time (use ISO 8601 or Unix seconds)")
    if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
        return datetime.fromtimestamp(float(raw), tz=UTC)
    value = parse_datetime(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    if value is None:
        day = parse_date(raw)
        if day is None:
            raise ValueError(f"published_at {raw[:40]!r} is not a date-time (use ISO 8601 or Unix seconds)")
        value = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if timezone.is_naive(value) else value


UNIX_SECONDS_MAX = 253402300799  # 9999-12-31T23:59:59Z


def _from_unix_seconds(seconds: float) -> datetime:
    out_of_range = ValueError(
        f"published_at {str(seconds)[:40]} is out of range: Unix seconds are from 0 (1970-01-01) "
        f"to {UNIX_SECONDS_MAX} (9999-12-31)"
    )
    if not 0 <= seconds <= UNIX_SECONDS_MAX:  # NaN too
        raise out_of_range
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, ValueError, OSError):  # the last microsecond of 9999, rounded up
        raise out_of_range from None


def decode_upload(data: bytes, encoding: str) -> str:
    if encoding not in UPLOAD_ENCODINGS:
        raise ServiceError(f"encoding must be one of {', '.join(UPLOAD_ENCODINGS)}", field="encoding")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ServiceError("the file is UTF-16: save it as UTF-8 and upload it again", field="file")
    if encoding == "latin-1":
        return data.decode("latin-1")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ServiceError(
            f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8, "
            "or upload it with encoding latin-1 if that is what it is",
            field="file",
        ) from None


def upload_columns(fieldnames: Sequence[str] | None) -> dict[str, str]:
    if not fieldnames:
        raise ServiceError("the file is empty or has no header row", field="file")
    mapping: dict[str, str] = {}
    for name in fieldnames:
        key = _COLUMN_ALIASES.get((name or "").strip().lower().replace(" ", "_"))
        if key and key not in mapping.values():
            mapping[name] = key
    if not {"text", "title"} & set(mapping.values()):
        shown = ", ".join(repr(n) for n in fieldnames[:10])
        raise ServiceError(
            f"the header needs a 'text' or 'title' column (optional: published_at, url, language, id); found {shown}",
            field="file",
        )
    return mapping


class UploadedFile(Protocol):
    """What a dashboard form and the API both hand over: Django's UploadedFile."""

    size: int | None

    def read(self) -> bytes: ...


def items_upload_file(
    *, file: UploadedFile, source_name: str, username: str, encoding: str = "utf-8"
) -> IngestReport:
    """A CSV file uploaded from the dashboard or the API, into the upload source `source_name` (default
    "upload:<username>"); the size is checked before the file is read."""
    if (file.size or 0) > UPLOAD_MAX_BYTES:
        raise ServiceError(f"the file is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB", field="file")
    source = source_get_or_create(name=source_name or f"upload:{username}", kind=Source.Kind.UPLOAD)
    return items_upload_csv(source=source, data=file.read(), encoding=encoding)


def items_upload_csv(
    *, source: Source, data: bytes, encoding: str = "utf-8", now: datetime | None = None, score: bool = True
) -> IngestReport:
    """Ingest a CSV file; rows are numbered as a spreadsheet shows them (the header is row 1).

    Whole-file problems (not UTF-8, no usable header, too large) store nothing and raise ServiceError.
    Row problems (empty text, a bad date or URL, broken quoting) reject that row only; a quote left open runs
    to the end of the file, so it rejects its row as "line N: unterminated quote" and the rest is not read.
    Valid rows are stored in batches of UPLOAD_BATCH, each atomic; uploading the same file again stores
    nothing twice.
    """
    if len(data) > UPLOAD_MAX_BYTES:
        raise ServiceError(f"the file is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB", field="file")
    now = now or timezone.now()
    total = IngestReport()
    pending: list[tuple[int, ItemRecord]] = []
    for number, record in csv_records(decode_upload(data, encoding), total):
        pending.append((number, record))
        if len(pending) >= UPLOAD_BATCH:
            _ingest_rows(source, pending, now, score, total)
            pending = []
    _ingest_rows(source, pending, now, score, total)
    total.rejected.sort()
    total.notes.sort()
    return total


@dataclass(frozen=True)
class _CsvProblem:
    reason: str


def _csv_rows(text: str) -> Iterator[list[str] | _CsvProblem]:
    """The non-blank records of a CSV text (the header first), read strictly: a record with broken quoting
    comes as a _CsvProblem naming its first line, and reading goes on after it, except after a quote left
    open to the end of the file. A problem in the header is a ServiceError."""
    csv.field_size_limit(max(csv.field_size_limit(), 16 * 1024 * 1024))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    in_header = True
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            unterminated = "unexpected end of data" in str(exc)
            problem = "unterminated quote" if unterminated else f"malformed CSV ({exc})"
            if in_header:
                raise ServiceError(f"line {line}: {problem} in the header row", field="file") from None
            if unterminated:
                yield _CsvProblem(f"line {line}: {problem}; lines {line}-{reader.line_num} were not read")
                return
            yield _CsvProblem(f"line {line}: {problem}; the row was skipped")
            continue
        if cells:
            in_header = False
            yield cells


def csv_records(
    text: str, report: IngestReport, *, max_rows: int | None = UPLOAD_MAX_ROWS
) -> Iterator[tuple[int, ItemRecord]]:
    """(row number, record) for each usable row of a CSV text, read strictly (see `_csv_rows`).

    A row's problem (broken quoting, a bad date) goes into `report` as a rejection of that row; the
    header's raise ServiceError. Past `max_rows` the rest is rejected unread.
    """
    rows = _csv_rows(text)
    header = next(rows, None)
    header = header if isinstance(header, list) else None  # the header's problems raise instead
    mapping = upload_columns(header)
    for number, cells in enumerate(rows, start=2):
        if max_rows is not None and number - 1 > max_rows:
            report.reject(number, f"more than {max_rows} rows: the rest was not read")
            return
        if isinstance(cells, _CsvProblem):
            report.reject(number, cells.reason)
            continue
        record = row_record(number, _row_dict(cells, header or []), mapping, report)
        if record is not None:
            yield number, record


def _row_dict(cells: list[str], header: list[str]) -> dict[str | None, Any]:
    """A row as csv.DictReader gives it: by header name, extra cells as a list under the key None."""
    row: dict[str | None, Any] = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        row[None] = cells[len(header) :]
    return row


def row_record(
    number: int, row: Mapping[Any, Any], mapping: dict[str, str], report: IngestReport
) -> ItemRecord | None:
    values = {key: row.get(name) for name, key in mapping.items()}
    if None in row:  # more cells than header columns
        report.notes.append((number, "extra cells beyond the header were ignored"))
    try:
        published = parse_when(str(values.get("published_at") or ""))
    except ValueError as exc:
        report.reject(number, str(exc), "published_at")
        return None
    return ItemRecord(
        text=str(values.get("text") or ""),
        title=str(values.get("title") or ""),
        url=str(values.get("url") or "") or None,
        published_at=published,
        language=str(values.get("language") or ""),
        external_id=str(values.get("external_id") or ""),
    )


def _ingest_rows(
    source: Source, rows: list[tuple[int, ItemRecord]], now: datetime, score: bool, total: IngestReport
) -> None:
    """Ingest one batch of rows and fold its report (indices mapped back to row numbers) into `total`."""
    if not rows:
        return
    part = items_ingest(source=source, records=[r for _, r in rows], now=now, score=score)
    numbers = [n for n, _ in rows]
    total.created += part.created
    total.duplicates += part.duplicates
    total.item_ids += part.item_ids
    total.rejected += [(numbers[i], reason) for i, reason in part.rejected]
    total.rejected_fields |= {numbers[i]: name for i, name in part.rejected_fields.items()}
    total.notes += [(numbers[i], note) for i, note in part.notes]


# --- push API -------------------------------------------------------------------------------------------
# The shape of a push request: the one definition that validation below and the API schema both read
# (apps/sentiment/api.py builds PushSerializer from these constants and PushItemSerializer from the table).
PUSH_MAX_ITEMS = 1000
SOURCE_NAME_MAX_CHARS = 200  # Source.name's max_length
# The fields of a pushed item. Every value is a string or null (published_at may be a number); any may be left out.
PUSH_FIELDS: dict[str, str] = {
    "text": "the body (an item needs a text or a title)",
    "title": "the headline",
    "url": "a link to the original; items with the same URL are stored once",
    "published_at": "ISO 8601, or Unix seconds (a number, or digits as text); default: now",
    "language": "ISO 639-1 code; default: detected",
    "id": "your id for the item (stored as its external id)",
}


def _push_record(raw: object) -> ItemRecord:
    if not isinstance(raw, dict):
        raise ServiceError("each item must be a JSON object")
    unknown = set(raw) - set(PUSH_FIELDS)
    if unknown:
        shown = ", ".join(sorted(name if name.isprintable() else ascii(name) for name in map(str, unknown)))
        raise ServiceError(f"unknown fields: {shown}")
    when = raw.get("published_at")
    if isinstance(when, bool) or not isinstance(when, str | int | float | None):
        raise ServiceError("published_at must be a string or a number (Unix seconds)", field="published_at")
    for key in PUSH_FIELDS:
        if key != "published_at" and raw.get(key) is not None and not isinstance(raw[key], str):
            raise ServiceError(f"{key} must be a string", field=key)
    try:
        published = parse_when(when if when is not None else "")
    except ValueError as exc:
        raise ServiceError(str(exc), field="published_at") from None
    return ItemRecord(
        text=raw.get("text") or "",
        title=raw.get("title") or "",
        url=raw.get("url") or None,
        published_at=published,
        language=raw.get("language") or "",
        external_id=raw.get("id") or "",
    )


def _push_source_name(name: object) -> str:
    name = name or "api"
    if not isinstance(name, str):
        raise ServiceError("source must be a string", field="source")
    if len(name.strip()) > SOURCE_NAME_MAX_CHARS:
        raise ServiceError(f"source is at most {SOURCE_NAME_MAX_CHARS} characters", field="source")
    return name


def items_push(*, source_name: object, items: object, now: datetime | None = None) -> IngestReport:
    """A JSON batch from the push API (`source_name` and `items` as the request gave them; default source
    "api"): a bad item is rejected with its 0-based index in the request and never stops the others."""
    name = _push_source_name(source_name)
    if not isinstance(items, list) or not items:
        raise ServiceError("`items` must be a non-empty list of objects", field="items")
    if len(items) > PUSH_MAX_ITEMS:
        raise ServiceError(f"at most {PUSH_MAX_ITEMS} items per request, got {len(items)}", field="items")
    source = source_get_or_create(name=name, kind=Source.Kind.PUSH)
    if source.kind != Source.Kind.PUSH:
        raise ServiceError(
            f"source {source.name!r} is a {source.kind} source, not a push source", field="source"
        )
    report = IngestReport()
    valid: list[tuple[int, ItemRecord]] = []
    for index, raw in enumerate(items):
        try:
            valid.append((index, _push_record(raw)))
        except ServiceError as exc:
            report.reject(index, exc.message, exc.field)
    _ingest_rows(source, valid, now or timezone.now(), True, report)
    report.rejected.sort()
    report.notes.sort()
    return report
