"""Ingestion: validate incoming records, store each item once, link entities and topics, queue scoring.

Every source (feed poll, push API, CSV upload, replay) ends in `items_ingest`. Its contract:

- A record needs a title or a text; the text is capped at MAX_TEXT_CHARS (the item is marked `truncated`),
  the title at MAX_TITLE_CHARS. A URL, when given, must be http(s).
- No text field (title, text, url, language, id) may hold a NUL character or a lone surrogate: such a record
  is rejected, naming the field, rather than silently changed (NUL used to be stripped from title and text).
- A naive `published_at` is read as UTC; a missing one becomes the ingestion time. It must lie between
  EARLIEST_PUBLISHED (1970-01-01) and MAX_FUTURE (a day) after the ingestion time, or the record is rejected;
  one in the future within that day is clamped to the ingestion time (and noted).
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
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.errors import ServiceError
from apps.sentiment.models import Item, ItemEntity, ItemTopic, Source
from apps.sentiment.services.language import detect_language
from ml.api import strip_links

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 100_000
MAX_TITLE_CHARS = 1000
MAX_URL_CHARS = 1000
FUTURE_NOTE_TOLERANCE = timedelta(minutes=5)
EARLIEST_PUBLISHED = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
SCORE_CHUNK = 256

_SPACE_RE = re.compile(r"\s+")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


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
    # index -> the field a rejection names, when it names one ("title", "url", "published_at", ...)
    rejected_fields: dict[int, str] = field(default_factory=dict)

    def reject(self, index: int, reason: str, field: str | None = None) -> None:
        self.rejected.append((index, reason))
        if field:
            self.rejected_fields[index] = field

    def as_dict(self) -> dict[str, object]:
        return {
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": [self._rejection(i, r) for i, r in self.rejected],
            "notes": [{"index": i, "note": n} for i, n in self.notes],
        }

    def _rejection(self, index: int, reason: str) -> dict[str, object]:
        entry: dict[str, object] = {"index": index, "reason": reason}
        if index in self.rejected_fields:
            entry["field"] = self.rejected_fields[index]
        return entry


# --- text normalisation and language -------------------------------------------------------------------
def normalise_text(text: str) -> str:
    """The form duplicates are compared in: NFKC, lower case, links removed, whitespace collapsed.

    Two posts that differ only in a shortened link, case or spacing are the same item.
    """
    return strip_links(unicodedata.normalize("NFKC", text).lower())


def text_hash(title: str, text: str) -> str:
    return hashlib.sha256(normalise_text(f"{title}\n{text}").encode("utf-8")).hexdigest()


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


def check_text(value: str, *, field: str) -> None:
    """Refuse a NUL character or a lone surrogate in `value` (they cannot be stored, hashed or shown safely)."""
    if "\x00" in value:
        raise ServiceError(f"{field} contains a NUL character", field=field)
    if _SURROGATE_RE.search(value):
        raise ServiceError(
            f"{field} contains a lone surrogate (half of a UTF-16 pair): send valid text", field=field
        )


def _clean_published(
    published: datetime | None, index: int, now: datetime, notes: list[tuple[int, str]]
) -> datetime:
    published = published or now
    if timezone.is_naive(published):
        published = published.replace(tzinfo=UTC)
    if not EARLIEST_PUBLISHED <= published <= now + MAX_FUTURE:
        raise ServiceError(
            f"published_at {published.isoformat()} is outside the accepted window: from "
            f"{EARLIEST_PUBLISHED:%Y-%m-%d} to {MAX_FUTURE.total_seconds() / 3600:.0f} hours after ingestion",
            field="published_at",
        )
    if published > now:
        if published - now > FUTURE_NOTE_TOLERANCE:
            notes.append(
                (index, f"published_at {published.isoformat()} is in the future: set to ingestion time")
            )
        published = now
    return published


def _clean(index: int, rec: ItemRecord, now: datetime, notes: list[tuple[int, str]]) -> _Clean:
    texts = {
        "title": rec.title,
        "text": rec.text,
        "url": rec.url,
        "language": rec.language,
        "id": rec.external_id,
    }
    for name, value in texts.items():
        check_text(value or "", field=name)
    title = _SPACE_RE.sub(" ", rec.title or "").strip()
    text = (rec.text or "").strip()
    if not title and not text:
        raise ServiceError("text and title are both empty", field="text")
    url = _clean_url(rec.url)
    published = _clean_published(rec.published_at, index, now, notes)
    truncated = len(text) > MAX_TEXT_CHARS or len(title) > MAX_TITLE_CHARS
    if truncated:
        notes.append((index, f"text longer than {MAX_TEXT_CHARS} characters: truncated"))
    text, title = text[:MAX_TEXT_CHARS], title[:MAX_TITLE_CHARS]
    language = (rec.language or "").strip().lower()[:16] or detect_language(f"{title} {text}")
    return _Clean(
        index=index,
        title=title,
        text=text,
        url=url,
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
    check_text(name, field="source")
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
            report.reject(index, exc.message, exc.field)
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
