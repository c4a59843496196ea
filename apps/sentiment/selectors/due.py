"""What the periodic tasks and jobs find to do: feeds to poll, deliveries to send, items to (re-)score."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Max, Min, Q
from django.utils import timezone

from apps.core.models import JobStatus, ModelVersion, TrainingJob
from apps.core.selectors import active_version
from apps.sentiment.models import Delivery, Item, Source

TASK = "sentiment"  # the model registry task whose active version scores items
RESCORE_KIND = "sentiment_rescore"
DELIVERY_WAITING = (Delivery.Status.PENDING, Delivery.Status.RETRYING)
STRAGGLER_AGE = timedelta(minutes=15)
STRAGGLER_WINDOW = timedelta(hours=24)
STRAGGLER_LIMIT = 2000


def feeds_due(now: datetime | None = None) -> list[int]:
    """Enabled feeds whose next poll time has come (or that were never polled)."""
    now = now or timezone.now()
    due = Source.objects.filter(kind=Source.Kind.FEED, enabled=True).filter(
        Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now)
    )
    return list(due.values_list("pk", flat=True))


def deliveries_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Deliveries waiting to be (re)sent whose time has come, oldest first."""
    now = now or timezone.now()
    qs = Delivery.objects.filter(status__in=DELIVERY_WAITING, next_attempt_at__lte=now).order_by(
        "next_attempt_at", "pk"
    )
    return list(qs.values_list("pk", flat=True)[:limit])


def items_unscored(
    *, version: ModelVersion, start: datetime | None = None, end: datetime | None = None
) -> list[int]:
    """Ids of items (published in [start, end)) that `version` has not scored yet."""
    qs = Item.objects.exclude(scores__model_version=version)
    if start is not None:
        qs = qs.filter(published_at__gte=start)
    if end is not None:
        qs = qs.filter(published_at__lt=end)
    return list(qs.order_by("published_at").values_list("pk", flat=True))


def items_stragglers(*, now: datetime | None = None) -> list[int]:
    """Items ingested 15 min to 24 h ago that the active version has not scored (a lost scoring task).

    Younger items are probably still queued; older ones are left to an explicit re-score job.
    """
    version = active_version(TASK)
    if version is None:
        return []
    now = now or timezone.now()
    qs = Item.objects.filter(ingested_at__lt=now - STRAGGLER_AGE, ingested_at__gte=now - STRAGGLER_WINDOW)
    qs = qs.exclude(scores__model_version=version)
    return list(qs.order_by("ingested_at").values_list("pk", flat=True)[:STRAGGLER_LIMIT])


def items_in_range(start: datetime, end: datetime) -> list[int]:
    return list(
        Item.objects.filter(published_at__gte=start, published_at__lt=end).values_list("pk", flat=True)
    )


def items_time_range() -> tuple[datetime, datetime] | None:
    """The earliest and the latest `published_at` of the stored items (None without items)."""
    span = Item.objects.aggregate(first=Min("published_at"), last=Max("published_at"))
    return (span["first"], span["last"]) if span["first"] is not None else None


def aggregation_failure() -> TrainingJob | None:
    """The newest re-score job, when it failed: its range's scores may be stored but not in the series.

    Re-running it (a new job with the same range) rebuilds the range; a later success clears this.
    """
    last = TrainingJob.objects.filter(kind=RESCORE_KIND).order_by("-created_at", "-pk").first()
    return last if last is not None and last.status == JobStatus.FAILED else None
