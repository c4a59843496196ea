"""Ingestion: validate incoming records, store each item once, link entities and topics, queue scoring.

Every source (feed poll, push API, CSV upload, replay) ends in `items_ingest`. Its contract:

- A record needs a title or a text; the text is capped at MAX_TEXT_CHARS (the item is marked `truncated`),
  the title at MAX_TITLE_CHARS. A URL, when given, must be http(s). A naive `published_at` is read as UTC; a
  missing one becomes the ingestion time; one in the future is clamped to the ingestion time (and noted).
- Duplicates are items whose URL, or whose normalised text (see `normalise_text`), is already stored or
  appears earlier in the same batch. They are counted, never stored twice.
- Atomic per batch: the valid records of one call are stored in one transaction, together with their entity
  and topic links and the source's counter. Invalid records are rejected one by one (with their index and a
  reason) and do not stop the others; a database failure stores none of the batch.
- Scoring is queued (inference queue) once the batch is committed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment.models import Item, ItemEntity, ItemTopic, Source

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000
MAX_TITLE_CHARS = 1000
MAX_URL_CHARS = 1000
FUTURE_NOTE_TOLERANCE = timedelta(minutes=5)
SCORE_CHUNK = 256

_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class ItemRecord:
    """One incoming item, before validation."""

    text: str = ""
    title: str = ""
    url: str | None = None
    published_at: datetime | None = None
    language: str = ""
    external_id: str = ""


@dataclass
class IngestReport:
    """What a batch did: `rejected` and `notes` hold (index, message) pairs, index in the caller's numbering."""

    created: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": [{"index": i, "reason": r} for i, r in self.rejected],
            "notes": [{"index": i, "note": n} for i, n in self.notes],
        }


# --- text normalisation and language -------------------------------------------------------------------
def normalise_text(text: str) -> str:
    """The form duplicates are compared in: NFKC, lower case, links removed, whitespace collapsed.

    Two posts that differ only in a shortened link, case or spacing are the same item.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _URL_RE.sub(" ", text)
    return _SPACE_RE.sub(" ", text).strip()


def text_hash(title: str, text: str) -> str:
    return hashlib.sha256(normalise_text(f"{title}\n{text}").encode("utf-8")).hexdigest()


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "of",
            "to",
            "in",
            "is",
            "for",
            "on",
            "that",
            "with",
            "as",
            "by",
            "at",
            "from",
            "are",
            "was",
            "be",
            "it",
            "its",
            "has",
            "have",
            "will",
            "this",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "nicht",
            "mit",
            "von",
            "den",
            "des",
            "auf",
            "für",
            "im",
            "dem",
            "eine",
            "ein",
            "zu",
            "sich",
            "auch",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "et",
            "des",
            "est",
            "une",
            "pour",
            "dans",
            "que",
            "qui",
            "sur",
            "du",
            "au",
            "avec",
            "pas",
            "par",
            "sont",
            "aux",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "la",
            "los",
            "las",
            "y",
            "de",
            "que",
            "en",
            "un",
            "una",
            "por",
            "con",
            "para",
            "del",
            "se",
            "es",
            "al",
            "sus",
            "como",
            "más",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "lo",
            "la",
            "gli",
            "le",
            "e",
            "di",
            "che",
            "un",
            "una",
            "per",
            "con",
            "del",
            "della",
            "non",
            "sono",
            "nel",
            "alla",
        ]
    ),
    "nl": frozenset(
        [
            "de",
            "het",
            "een",
            "en",
            "van",
            "is",
            "dat",
            "op",
            "te",
            "in",
            "met",
            "voor",
            "niet",
            "zijn",
            "er",
            "aan",
            "ook",
        ]
    ),
    "pt": frozenset(
        [
            "o",
            "a",
            "os",
            "as",
            "e",
            "de",
            "que",
            "em",
            "um",
            "uma",
            "para",
            "com",
            "do",
            "da",
            "não",
            "por",
            "mais",
            "dos",
            "das",
        ]
    ),
    "sv": frozenset(
        [
            "och",
            "att",
            "det",
            "som",
            "en",
            "på",
            "är",
            "av",
            "för",
            "med",
            "till",
            "den",
            "har",
            "inte",
            "om",
            "ett",
        ]
    ),
    "fi": frozenset(
        ["ja", "on", "ei", "se", "että", "oli", "ovat", "mutta", "kun", "joka", "myös", "tai", "sen", "hän"]
    ),
}
_SCRIPTS = (  # (first code point, last code point, language) for scripts that name a language by themselves
    (0x3040, 0x30FF, "ja"),
    (0xAC00, 0xD7AF, "ko"),
    (0x4E00, 0x9FFF, "zh"),
    (0x0400, 0x04FF, "ru"),
    (0x0600, 0x06FF, "ar"),
    (0x0590, 0x05FF, "he"),
    (0x0370, 0x03FF, "el"),
    (0x0E00, 0x0E7F, "th"),
    (0x0900, 0x097F, "hi"),
)
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """A cheap guess: the script for non-Latin text, else the language whose stopwords occur most.

    Returns an ISO 639-1 code, or "" when the text is too short or has no clear winner (fewer than two
    stopword hits). Kana is checked before CJK ideographs, so Japanese with kanji is still "ja".
    """
    letters = [ch for ch in text[:2000] if ch.isalpha()]
    if not letters:
        return ""
    counts: dict[str, int] = {}
    for ch in letters:
        cp = ord(ch)
        for low, high, lang in _SCRIPTS:
            if low <= cp <= high:
                counts[lang] = counts.get(lang, 0) + 1
                break
    if counts:
        lang, n = max(counts.items(), key=lambda kv: kv[1])
        if n >= 0.3 * len(letters):
            return "ja" if counts.get("ja", 0) >= 0.1 * len(letters) else lang
    words = [w.lower() for w in _WORD_RE.findall(text[:2000])]
    hits = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(hits, key=lambda lang: hits[lang])
    ranked = sorted(hits.values(), reverse=True)
    if ranked[0] < 2 or ranked[0] == ranked[1]:
        return "en" if ranked[0] == 0 and _mostly_ascii(letters) and len(words) <= 6 else ""
    return best


def _mostly_ascii(letters: list[str]) -> bool:
    # Short headlines ("$TSLA up 5%") carry no stopwords; finance feeds are overwhelmingly English.
    return sum(ch.isascii() for ch in letters) >= 0.95 * len(letters)


# --- validation -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Clean:
    index: int
    title: str
    text: str
    url: str | None
    published_at: datetime
    language: str
    external_id: str
    truncated: bool
    hash: str


def _clean_url(url: str | None) -> str | None:
    url = (url or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_CHARS:
        raise ServiceError(f"url must be an http(s) URL of at most {MAX_URL_CHARS} characters", field="url")
    return url


def _clean(index: int, rec: ItemRecord, now: datetime, notes: list[tuple[int, str]]) -> _Clean:
    title = _SPACE_RE.sub(" ", (rec.title or "").replace("\x00", "")).strip()
    text = (rec.text or "").replace("\x00", "").strip()
    if not title and not text:
        raise ServiceError("text and title are both empty", field="text")
    truncated = len(text) > MAX_TEXT_CHARS or len(title) > MAX_TITLE_CHARS
    if truncated:
        notes.append((index, f"text longer than {MAX_TEXT_CHARS} characters: truncated"))
    text, title = text[:MAX_TEXT_CHARS], title[:MAX_TITLE_CHARS]
    published = rec.published_at or now
    if timezone.is_naive(published):
        published = published.replace(tzinfo=UTC)
    if published > now:
        if published - now > FUTURE_NOTE_TOLERANCE:
            notes.append(
                (index, f"published_at {published.isoformat()} is in the future: set to ingestion time")
            )
        published = now
    language = (rec.language or "").strip().lower()[:16] or detect_language(f"{title} {text}")
    return _Clean(
        index=index,
        title=title,
        text=text,
        url=_clean_url(rec.url),
        published_at=published,
        language=language,
        external_id=(rec.external_id or "")[:300],
        truncated=truncated,
        hash=text_hash(title, text),
    )


# --- storing --------------------------------------------------------------------------------------------
def source_get_or_create(*, name: str, kind: str, url: str = "") -> Source:
    name = (name or "").strip()[:200]
    if not name:
        raise ServiceError("a source name is required", field="source")
    if kind not in Source.Kind.values:
        raise ServiceError(f"unknown source kind {kind!r}", field="kind")
    source, _ = Source.objects.get_or_create(name=name, defaults={"kind": kind, "url": url})
    return source


def items_ingest(
    *,
    source: Source,
    records: Sequence[ItemRecord],
    now: datetime | None = None,
    score: bool = True,
    first_index: int = 0,
) -> IngestReport:
    """Validate, deduplicate and store `records` for `source`; see the module docstring for the rules."""
    now = now or timezone.now()
    report = IngestReport()
    clean: list[_Clean] = []
    for offset, rec in enumerate(records):
        index = first_index + offset
        try:
            clean.append(_clean(index, rec, now, report.notes))
        except ServiceError as exc:
            report.rejected.append((index, exc.message))
    fresh = _drop_duplicates(clean)
    report.duplicates = len(clean) - len(fresh)
    if fresh:
        with transaction.atomic():
            items, raced = _store(source, fresh)
            report.duplicates += raced
            _link(items)
            Source.objects.filter(pk=source.pk).update(items_total=F("items_total") + len(items))
            ids = [item.pk for item in items]
            if score and ids:
                transaction.on_commit(lambda: enqueue_scoring(ids))
        report.created = len(items)
        report.item_ids = ids
    return report


def _drop_duplicates(clean: list[_Clean]) -> list[_Clean]:
    """Records whose URL or text hash is neither stored already nor seen earlier in the batch."""
    urls = {c.url for c in clean if c.url}
    hashes = {c.hash for c in clean}
    known_urls: set[str | None] = set(Item.objects.filter(url__in=urls).values_list("url", flat=True))
    known_hashes = set(Item.objects.filter(text_hash__in=hashes).values_list("text_hash", flat=True))
    fresh = []
    for c in clean:
        if (c.url and c.url in known_urls) or c.hash in known_hashes:
            continue
        known_hashes.add(c.hash)
        if c.url:
            known_urls.add(c.url)
        fresh.append(c)
    return fresh


def _build(source: Source, c: _Clean) -> Item:
    return Item(
        source=source,
        url=c.url,
        title=c.title,
        text=c.text,
        text_hash=c.hash,
        published_at=c.published_at,
        language=c.language,
        external_id=c.external_id,
        truncated=c.truncated,
    )


def _store(source: Source, fresh: list[_Clean]) -> tuple[list[Item], int]:
    """Insert in bulk; if another process stored one of them meanwhile, insert one by one and skip those."""
    try:
        with transaction.atomic():
            return Item.objects.bulk_create([_build(source, c) for c in fresh]), 0
    except IntegrityError:
        pass
    items, raced = [], 0
    for c in fresh:
        try:
            with transaction.atomic():
                item = _build(source, c)
                item.save(force_insert=True)
                items.append(item)
        except IntegrityError:
            raced += 1
    return items, raced


def _link(items: list[Item]) -> None:
    """Entity and topic links for freshly stored items (bulk inserts, one query each)."""
    from apps.sentiment.services.entities import current_matcher
    from apps.sentiment.services.topics import current_topic_matcher

    matcher, topic_matcher = current_matcher(), current_topic_matcher()
    entity_links, topic_links = [], []
    for item in items:
        body = f"{item.title}\n{item.text}"
        for entity_id, matched in matcher.match(body).items():
            entity_links.append(ItemEntity(item=item, entity_id=entity_id, matched=matched[:200]))
        for topic_id, confidence in topic_matcher.match(body).items():
            topic_links.append(ItemTopic(item=item, topic_id=topic_id, confidence=confidence))
    ItemEntity.objects.bulk_create(entity_links, ignore_conflicts=True)
    ItemTopic.objects.bulk_create(topic_links, ignore_conflicts=True)


def enqueue_scoring(item_ids: Iterable[int]) -> None:
    """Send item ids to the inference queue in chunks (the scoring task is idempotent)."""
    from apps.sentiment.tasks import score_items

    ids = list(item_ids)
    for start in range(0, len(ids), SCORE_CHUNK):
        score_items.delay(ids[start : start + SCORE_CHUNK])


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


def parse_when(raw: str) -> datetime | None:
    """ISO 8601 ("2024-05-01T09:30:00Z", "2024-05-01 09:30"), a date, or Unix seconds (naive = UTC); None if blank.

    Raises ValueError for anything else.
    """
    from django.utils.dateparse import parse_date, parse_datetime

    raw = (raw or "").strip()
    if not raw:
        return None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
        return datetime.fromtimestamp(float(raw), tz=UTC)
    value = parse_datetime(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    if value is None:
        day = parse_date(raw)
        if day is None:
            raise ValueError(f"published_at {raw[:40]!r} is not a date-time (use ISO 8601 or Unix seconds)")
        value = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if timezone.is_naive(value) else value


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


def items_upload_csv(
    *, source: Source, data: bytes, encoding: str = "utf-8", now: datetime | None = None, score: bool = True
) -> IngestReport:
    """Ingest a CSV file; rows are numbered as a spreadsheet shows them (the header is row 1).

    Whole-file problems (not UTF-8, no usable header, too large) store nothing and raise ServiceError.
    Row problems (empty text, a bad date or URL) reject that row only. Valid rows are stored in batches of
    UPLOAD_BATCH, each atomic; uploading the same file again stores nothing twice.
    """
    import csv
    import io

    if len(data) > UPLOAD_MAX_BYTES:
        raise ServiceError(f"the file is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB", field="file")
    text = decode_upload(data, encoding)
    csv.field_size_limit(max(csv.field_size_limit(), 16 * 1024 * 1024))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    mapping = upload_columns(reader.fieldnames)
    now = now or timezone.now()
    total = IngestReport()
    pending: list[tuple[int, ItemRecord]] = []
    try:
        for number, row in enumerate(reader, start=2):
            if number - 1 > UPLOAD_MAX_ROWS:
                total.rejected.append((number, f"more than {UPLOAD_MAX_ROWS} rows: the rest was not read"))
                break
            record = row_record(number, row, mapping, total)
            if record is not None:
                pending.append((number, record))
            if len(pending) >= UPLOAD_BATCH:
                _ingest_rows(source, pending, now, score, total)
                pending = []
    except csv.Error as exc:
        total.rejected.append(
            (reader.line_num, f"the CSV is malformed here ({exc}); later rows were not read")
        )
    _ingest_rows(source, pending, now, score, total)
    total.rejected.sort()
    total.notes.sort()
    return total


def row_record(
    number: int, row: dict[str, Any], mapping: dict[str, str], report: IngestReport
) -> ItemRecord | None:
    values = {key: row.get(name) for name, key in mapping.items()}
    if None in row:  # more cells than header columns
        report.notes.append((number, "extra cells beyond the header were ignored"))
    try:
        published = parse_when(str(values.get("published_at") or ""))
    except ValueError as exc:
        report.rejected.append((number, str(exc)))
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
    total.notes += [(numbers[i], note) for i, note in part.notes]


# --- push API -------------------------------------------------------------------------------------------
PUSH_MAX_ITEMS = 1000
_PUSH_FIELDS = {"text", "title", "url", "published_at", "language", "id"}


def _push_record(raw: object) -> ItemRecord:
    if not isinstance(raw, dict):
        raise ServiceError("each item must be a JSON object")
    unknown = set(raw) - _PUSH_FIELDS
    if unknown:
        raise ServiceError(f"unknown fields: {', '.join(sorted(unknown))}")
    for key in _PUSH_FIELDS:
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ServiceError(f"{key} must be a string")
    try:
        published = parse_when(raw.get("published_at") or "")
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    return ItemRecord(
        text=raw.get("text") or "",
        title=raw.get("title") or "",
        url=raw.get("url") or None,
        published_at=published,
        language=raw.get("language") or "",
        external_id=raw.get("id") or "",
    )


def items_push(*, source_name: str, items: object, now: datetime | None = None) -> IngestReport:
    """A JSON batch from the push API: per-item errors carry the item's 0-based index in the request."""
    if not isinstance(items, list) or not items:
        raise ServiceError("`items` must be a non-empty list of objects", field="items")
    if len(items) > PUSH_MAX_ITEMS:
        raise ServiceError(f"at most {PUSH_MAX_ITEMS} items per request, got {len(items)}", field="items")
    source = source_get_or_create(name=source_name or "api", kind=Source.Kind.PUSH)
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
            report.rejected.append((index, exc.message))
    _ingest_rows(source, valid, now or timezone.now(), True, report)
    report.rejected.sort()
    report.notes.sort()
    return report
