"""Sentiment monitor rows: sources, items (deduplicated), entities, scores, time buckets, alert rules,
alerts, and delivery attempts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce


class Source(models.Model):
    class Kind(models.TextChoices):
        FEED = "feed", "RSS/Atom feed"
        PUSH = "push", "Push API"
        UPLOAD = "upload", "CSV upload"
        REPLAY = "replay", "Replay"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    url = models.URLField(max_length=1000, blank=True, default="")
    enabled = models.BooleanField(default=True)
    poll_interval_seconds = models.PositiveIntegerField(default=600)
    # health
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    etag = models.CharField(max_length=300, blank=True, default="")
    modified = models.CharField(max_length=300, blank=True, default="")
    items_total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    """One news item or post, stored once: unique by URL (when present) and by normalised-text hash."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="items")
    url = models.URLField(max_length=1000, null=True, blank=True)
    title = models.CharField(max_length=1000, blank=True, default="")
    text = models.TextField(blank=True, default="")
    text_hash = models.CharField(max_length=64)
    published_at = models.DateTimeField(db_index=True)
    language = models.CharField(max_length=16, blank=True, default="")
    external_id = models.CharField(max_length=300, blank=True, default="")
    truncated = models.BooleanField(default=False)
    ingested_at = models.DateTimeField(auto_now_add=True)
    entities: models.ManyToManyField[Entity, ItemEntity] = models.ManyToManyField(
        "Entity", through="ItemEntity", related_name="items"
    )

    class Meta:
        ordering = ["-published_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["url"], condition=Q(url__isnull=False), name="item_unique_url"),
            models.UniqueConstraint(fields=["text_hash"], name="item_unique_text"),
        ]

    def __str__(self) -> str:
        return (self.title or self.text)[:80]


class Entity(models.Model):
    """A watched ticker or company, matched by cashtag and aliases on word boundaries."""

    ticker = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=200)
    aliases = models.JSONField(default=list, blank=True)  # ["Apple", "Apple Inc."]
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ticker"]
        verbose_name_plural = "entities"

    def __str__(self) -> str:
        return self.ticker


class ItemEntity(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE)
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE)
    matched = models.CharField(max_length=200, blank=True, default="")  # the alias or cashtag that matched

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "entity"], name="item_entity_unique")]

    def __str__(self) -> str:
        return f"{self.entity_id} in item {self.item_id}"


class Topic(models.Model):
    """A topic (earnings, M&A, litigation, guidance...) and the method that assigns it."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    keywords = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class ItemTopic(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="item_topics")
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="item_topics")
    confidence = models.FloatField(default=1.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "topic"], name="item_topic_unique")]

    def __str__(self) -> str:
        return f"topic {self.topic_id} of item {self.item_id}"


class Score(models.Model):
    """A model version's sentiment for an item. Re-scoring with a new version adds a row."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="scores")
    model_version = models.ForeignKey("core.ModelVersion", on_delete=models.PROTECT, related_name="+")
    label = models.CharField(max_length=16)
    p_negative = models.FloatField()
    p_neutral = models.FloatField()
    p_positive = models.FloatField()
    score = models.FloatField()  # P(positive) - P(negative), in [-1, 1]
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "model_version"], name="score_unique")]
        indexes = [models.Index(fields=["model_version", "item"])]

    def __str__(self) -> str:
        return f"{self.label} {self.score:+.2f} (item {self.item_id})"


class Bucket(models.Model):
    """Aggregates per scope (entity, topic, or everything) per hour or day, with rolling baselines."""

    class Granularity(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    entity = models.ForeignKey(
        Entity, null=True, blank=True, on_delete=models.CASCADE, related_name="buckets"
    )
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.CASCADE, related_name="buckets")
    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    score_sum = models.FloatField(default=0.0)
    negative = models.PositiveIntegerField(default=0)
    positive = models.PositiveIntegerField(default=0)
    mean_score = models.FloatField(default=0.0)
    negative_share = models.FloatField(default=0.0)
    positive_share = models.FloatField(default=0.0)
    # EWMA baselines (mean and variance) of each statistic over the buckets BEFORE this one (see services/series.py).
    baseline = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.UniqueConstraint(
                fields=["entity", "topic", "granularity", "start"],
                name="bucket_unique",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["granularity", "start"])]

    def __str__(self) -> str:
        return f"{self.granularity} {self.start:%Y-%m-%d %H:%M} entity={self.entity_id} topic={self.topic_id}"


class AlertRule(models.Model):
    class Condition(models.TextChoices):
        SCORE_DROP = "score_drop", "Mean score falls below its baseline (z-score)"
        SCORE_RISE = "score_rise", "Mean score rises above its baseline (z-score)"
        NEGATIVE_SHARE = "negative_share", "Negative share rises above its baseline (z-score)"
        VOLUME_SPIKE = "volume_spike", "Volume spikes above its usual level (buzz z-score)"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    # scope: an entity, a topic, or neither (= every active entity)
    entity = models.ForeignKey(Entity, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")
    condition = models.CharField(max_length=32, choices=Condition.choices)
    threshold = models.FloatField(default=3.0)
    window_minutes = models.PositiveIntegerField(default=60)
    min_count = models.PositiveIntegerField(default=5)
    cooldown_minutes = models.PositiveIntegerField(default=240)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    channels = models.JSONField(
        default=list, blank=True
    )  # [{"type": "email", "to": [...]}, {"type": "webhook", ...}]
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    class Status(models.TextChoices):
        FIRED = "fired", "Fired"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    entity = models.ForeignKey(Entity, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    topic = models.ForeignKey(Topic, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FIRED)
    severity = models.CharField(max_length=16)
    value = models.FloatField()  # the z-score (or statistic) that crossed the threshold
    detail = models.JSONField(default=dict, blank=True)  # window, count, mean, baseline...
    items = models.ManyToManyField(Item, related_name="alerts", blank=True)  # the items that drove it
    fired_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            # One open alert per rule and entity (and topic): a second firing updates, never duplicates.
            models.UniqueConstraint(
                fields=["rule", "entity", "topic"],
                condition=~Q(status="resolved"),
                name="one_open_alert_per_rule_scope",
                nulls_distinct=False,
            ),
            # The same rule in a form every backend enforces: Django skips `nulls_distinct` where the database
            # lacks it (SQLite, PostgreSQL < 15), and NULL entity/topic would then never collide.
            models.UniqueConstraint(
                "rule",
                Coalesce("entity", Value(0)),
                Coalesce("topic", Value(0)),
                condition=~Q(status="resolved"),
                name="one_open_alert_per_rule_scope_coalesced",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} ({self.status})"


class Delivery(models.Model):
    """One alert sent to one channel; retried with exponential backoff, every attempt logged."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.JSONField()
    channel_type = models.CharField(max_length=16)
    event = models.CharField(max_length=32, default="fired")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.channel_type} for alert {self.alert_id} ({self.status})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    ok = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(default=0.0)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {'ok' if self.ok else 'failed'}"


class Notification(models.Model):
    """The dashboard's own notification list (a delivery channel that cannot be down)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    read_by = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.message
