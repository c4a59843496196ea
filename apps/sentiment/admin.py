from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from apps.core.outbound import OutboundError, url_check
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


class SourceForm(forms.ModelForm):
    """A feed URL set here is checked like one set on the Sources page (no internal addresses)."""

    class Meta:
        model = Source
        fields = "__all__"  # noqa: DJ007 (the admin edits every field)

    def clean_url(self) -> str:
        url = self.cleaned_data.get("url") or ""
        if url:
            try:
                url_check(url=url, what="feed URL", field="url")
            except OutboundError as exc:
                raise ValidationError(str(exc)) from None
        return url


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
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


def _masked(channels: Any) -> str:
    from apps.sentiment.services.delivery import channels_masked

    if isinstance(channels, dict):
        channels = [channels]
    return str(channels_masked(list(channels or [])))


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Channels hold webhook secrets: shown masked, and edited in the rule editor, which keeps them."""

    list_display = ["name", "enabled", "entity", "topic", "condition", "threshold", "severity"]
    list_filter = ["enabled", "condition", "severity"]
    exclude = ["channels"]
    readonly_fields = ["channels_masked"]

    @admin.display(description="channels (edit them on the rule's page)")
    def channels_masked(self, rule: AlertRule) -> str:
        return _masked(rule.channels)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule", "entity", "topic", "status", "severity", "value", "fired_at"]
    list_filter = ["status", "severity"]
    raw_id_fields = ["items"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel_type", "event", "status", "attempts", "next_attempt_at", "sent_at"]
    list_filter = ["status", "channel_type"]
    exclude = ["channel"]
    readonly_fields = ["channel_masked"]

    @admin.display(description="channel")
    def channel_masked(self, delivery: Delivery) -> str:
        return _masked(delivery.channel)
