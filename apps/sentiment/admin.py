from django.contrib import admin

from apps.sentiment.models import (
    Alert,
    AlertRule,
    Bucket,
    Delivery,
    Entity,
    Item,
    ItemEntity,
    ItemTopic,
    Score,
    Source,
    Topic,
)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "enabled",
        "items_total",
        "consecutive_failures",
        "last_success_at",
        "next_poll_at",
    ]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "url"]
    readonly_fields = ["last_polled_at", "last_success_at", "last_error", "consecutive_failures", "etag", "modified",
                       "items_total"]  # fmt: skip


class ItemEntityInline(admin.TabularInline):
    model = ItemEntity
    extra = 0


class ItemTopicInline(admin.TabularInline):
    model = ItemTopic
    extra = 0


class ScoreInline(admin.TabularInline):
    model = Score
    extra = 0
    can_delete = False
    readonly_fields = [
        "model_version",
        "label",
        "p_negative",
        "p_neutral",
        "p_positive",
        "score",
        "created_at",
    ]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["__str__", "source", "published_at", "language", "truncated"]
    list_filter = ["source", "language", "truncated"]
    search_fields = ["title", "text", "url"]
    date_hierarchy = "published_at"
    raw_id_fields = ["source"]
    readonly_fields = ["text_hash", "ingested_at"]
    inlines = [ItemEntityInline, ItemTopicInline, ScoreInline]


@admin.register(Entity)
class EntityAdmin(admin.ModelAdmin):
    list_display = ["ticker", "name", "active"]
    list_filter = ["active"]
    search_fields = ["ticker", "name"]


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]


@admin.register(Bucket)
class BucketAdmin(admin.ModelAdmin):
    list_display = ["start", "granularity", "entity", "topic", "count", "mean_score", "negative_share"]
    list_filter = ["granularity"]
    date_hierarchy = "start"
    readonly_fields = [f.name for f in Bucket._meta.fields]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "entity", "topic", "condition", "threshold", "severity"]
    list_filter = ["enabled", "condition", "severity"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule", "entity", "topic", "status", "severity", "value", "fired_at"]
    list_filter = ["status", "severity"]
    raw_id_fields = ["items"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel_type", "event", "status", "attempts", "next_attempt_at", "sent_at"]
    list_filter = ["status", "channel_type"]
