"""HTTP API of the sentiment app (token or session auth), mounted at /api/sentiment/.

    POST /api/sentiment/items/                       push a JSON batch: {"source": "my-feed", "items": [...]}
    GET  /api/sentiment/items/?ticker=AAPL&limit=50  recent items with their latest score (a page)
    POST /api/sentiment/uploads/                     CSV upload (multipart: file, source, encoding)
    GET  /api/sentiment/entities/                    the watchlist;  POST: add or update an entity
    GET  /api/sentiment/entities/<ticker>/series/?granularity=hour|day&from=…&to=…   (ISO 8601 or Unix seconds)
    GET  /api/sentiment/series/?granularity=hour&topic=earnings   the series of a topic, or of everything
    GET  /api/sentiment/alerts/?status=open|fired|acknowledged|resolved|all&ticker=AAPL&limit=50
    GET  /api/sentiment/alerts/<id>/                 an alert with its items and deliveries
    POST /api/sentiment/alerts/<id>/acknowledge/
    POST /api/sentiment/alerts/<id>/resolve/

Writes need `sentiment.add_item` / `sentiment.add_entity` / `sentiment.change_alert`, reads the matching
`view_` permission (analysts and admins). Input problems, and acting on an alert in the wrong state, answer
400 with a readable `detail`; so does a query parameter an operation does not take (apps.core.api_filters).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import require
from apps.core.api_filters import TIME_FORMATS, UNIX_SECONDS_MAX, ApiView, Pagination, parse_time
from apps.core.api_schema import ErrorSerializer
from apps.core.errors import ServiceError
from apps.core.parsers import BatchJSONParser
from apps.sentiment import selectors
from apps.sentiment.models import Alert, AlertRule, Bucket, Delivery, DeliveryAttempt, Entity, Item, Topic
from apps.sentiment.selectors.series import DEFAULT_RANGE, MAX_SERIES_POINTS
from apps.sentiment.series_math import zscore
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import uploads
from apps.sentiment.services.delivery import channel_label
from apps.sentiment.services.entities import entity_upsert


# --- serializers --------------------------------------------------------------------------------------
@extend_schema_field(
    {
        "oneOf": [{"type": "string"}, {"type": "number", "minimum": 0, "maximum": UNIX_SECONDS_MAX}],
        "nullable": True,
    }
)
class StringOrSecondsField(serializers.Field):
    """A pushed item's time, documented as what the push service reads: ISO 8601 text, or Unix seconds."""


# The schema of a push request, built from the constants and the field table the push service validates
# against (services/uploads.py), so the two cannot disagree. Documentation only: the service validates, so
# that a bad item is rejected alone, with its index.
PushItemSerializer = type(
    "PushItemSerializer",
    (serializers.Serializer,),
    {
        name: (
            StringOrSecondsField(required=False, allow_null=True, help_text=help_text)
            if name == "published_at"
            else serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text=help_text)
        )
        for name, help_text in uploads.PUSH_FIELDS.items()
    },
)


class PushSerializer(serializers.Serializer):
    source = serializers.CharField(  # type: ignore[assignment]
        required=False, default="api", max_length=uploads.SOURCE_NAME_MAX_CHARS
    )
    items = serializers.ListField(child=PushItemSerializer(), min_length=1, max_length=uploads.PUSH_MAX_ITEMS)


INDEX_HELP = "The item's index in the batch, or the row's line in the file."


class RejectedSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text=INDEX_HELP)
    reason = serializers.CharField()
    field = serializers.CharField(required=False, help_text="The item's field at fault, when one is.")


class IngestNoteSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text=INDEX_HELP)
    note = serializers.CharField()


class IngestReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = RejectedSerializer(many=True)
    notes = IngestNoteSerializer(many=True)


class IngestRefusedSerializer(ErrorSerializer):
    """A push refused whole: why, and the report when the batch was read but every item was rejected."""

    created = serializers.IntegerField(required=False)
    duplicates = serializers.IntegerField(required=False)
    rejected = RejectedSerializer(many=True, required=False)
    notes = IngestNoteSerializer(many=True, required=False)


@extend_schema_field(OpenApiTypes.BINARY)
class UploadedFileField(serializers.FileField):
    """A file field documented as the file's bytes in a multipart part (spectacular's default is a URI)."""


class UploadSerializer(serializers.Serializer):
    file = UploadedFileField()
    source = serializers.CharField(required=False, allow_blank=True, max_length=200)  # type: ignore[assignment]
    encoding = serializers.ChoiceField(choices=uploads.UPLOAD_ENCODINGS, required=False, default="utf-8")


class ItemScoreSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]
    score = serializers.FloatField(help_text="P(positive) - P(negative), in [-1, 1].")
    p_negative = serializers.FloatField()
    p_neutral = serializers.FloatField()
    p_positive = serializers.FloatField()
    model_version_id = serializers.IntegerField()


class ItemSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name", read_only=True)  # type: ignore[assignment]
    entities = serializers.SerializerMethodField()
    score = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = ["id", "source", "url", "title", "text", "published_at", "language", "truncated", "entities",
                  "score"]  # fmt: skip
        read_only_fields = fields

    def get_entities(self, obj: Item) -> list[str]:
        return [e.ticker for e in obj.entities.all()]

    @extend_schema_field(
        ItemScoreSerializer(allow_null=True, help_text="The latest score; null until scored.")
    )
    def get_score(self, obj: Item) -> dict[str, Any] | None:
        scores = sorted(obj.scores.all(), key=lambda s: s.created_at)
        if not scores:
            return None
        s = scores[-1]
        return {
            "label": s.label,
            "score": s.score,
            "p_negative": s.p_negative,
            "p_neutral": s.p_neutral,
            "p_positive": s.p_positive,
            "model_version_id": s.model_version_id,
        }


class EntitySerializer(serializers.ModelSerializer):
    aliases = serializers.ListField(child=serializers.CharField(), read_only=True)
    item_count = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = Entity
        fields = ["ticker", "name", "aliases", "active", "item_count"]
        read_only_fields = fields


class EntityWriteSerializer(serializers.Serializer):
    ticker = serializers.CharField(max_length=16)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=50
    )
    active = serializers.BooleanField(required=False, default=True)


# --- series -------------------------------------------------------------------------------------------
STATS = ("count", "mean_score", "negative_share", "positive_share")
GRANULARITIES = list(DEFAULT_RANGE)  # hour, day
_STAT_HELP = {
    "count": "how many items",
    "mean_score": "the mean score",
    "negative_share": "the share of negative items",
    "positive_share": "the share of positive items",
}


class ZScoresSerializer(serializers.Serializer):
    """How far a point's statistics lie from their baseline, in standard deviations (null: no baseline yet)."""

    count = serializers.FloatField(allow_null=True, help_text="The count's z-score (a volume spike is high).")
    mean_score = serializers.FloatField(allow_null=True, help_text="The mean score's z-score.")
    negative_share = serializers.FloatField(allow_null=True, help_text="The negative share's z-score.")
    positive_share = serializers.FloatField(allow_null=True, help_text="The positive share's z-score.")


class BaselineStatSerializer(serializers.Serializer):
    """A statistic's rolling baseline over the periods before a point (exponentially weighted)."""

    ewma = serializers.FloatField(help_text="The weighted mean of the earlier periods.")
    ewmvar = serializers.FloatField(help_text="Their weighted variance.")
    n = serializers.IntegerField(help_text="How many earlier periods it has seen.")


BaselineSerializer = type(
    "BaselineSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "The baselines a point is compared with, one per statistic; empty before any history.",
        **{
            stat: BaselineStatSerializer(required=False, help_text=f"The baseline of {help_text}.")
            for stat, help_text in _STAT_HELP.items()
        },
    },
)


class SeriesPointSerializer(serializers.ModelSerializer):
    """One hour or day of a series. A period without items has no point: its count is 0."""

    z = serializers.SerializerMethodField(help_text="Each statistic's distance from its baseline.")
    baseline = serializers.SerializerMethodField(help_text="The baselines the z-scores are computed from.")

    class Meta:
        model = Bucket
        fields = ["start", "count", "mean_score", "negative_share", "positive_share", "negative", "positive",
                  "baseline", "z"]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {
            "start": {"help_text": "The period's start (UTC); it lasts an hour or a day."},
            "count": {"help_text": "How many scored items were published in the period."},
            "mean_score": {"help_text": "Their mean score, P(positive) - P(negative), in [-1, 1]."},
            "negative_share": {"help_text": "The share of them labelled negative, in [0, 1]."},
            "positive_share": {"help_text": "The share of them labelled positive, in [0, 1]."},
            "negative": {"help_text": "How many of them are labelled negative."},
            "positive": {"help_text": "How many of them are labelled positive."},
        }

    @extend_schema_field(ZScoresSerializer)
    def get_z(self, obj: Bucket) -> dict[str, float | None]:
        return {stat: zscore(obj, stat) for stat in STATS}

    @extend_schema_field(BaselineSerializer)
    def get_baseline(self, obj: Bucket) -> dict[str, Any]:
        return obj.baseline or {}


# The answer of the series endpoints. Built with type() because one field is named `from`, a keyword.
SeriesSerializer = type(
    "SeriesSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "A time series of sentiment: its scope, its range, and a point per period that has items.",
        "entity": serializers.CharField(
            allow_null=True, help_text="The entity's ticker, if one was asked for."
        ),
        "topic": serializers.CharField(allow_null=True, help_text="The topic's slug, if one was asked for."),
        "granularity": serializers.ChoiceField(choices=GRANULARITIES, help_text="The length of each period."),
        "from": serializers.DateTimeField(help_text="The range's start, inclusive (ISO 8601, UTC)."),
        "to": serializers.DateTimeField(help_text="The range's end, exclusive (ISO 8601, UTC)."),
        "buckets": SeriesPointSerializer(many=True, help_text="The points, oldest first."),
    },
)
_TIME_SCHEMA = {
    "oneOf": [
        {"type": "string", "format": "date-time"},
        {"type": "number", "minimum": 0, "maximum": UNIX_SECONDS_MAX},
    ]
}
_RANGES = " and ".join(f"{days.days} days for {g}s" for g, days in DEFAULT_RANGE.items())
SERIES_PARAMETERS = [
    OpenApiParameter(
        "granularity",
        OpenApiTypes.STR,
        enum=GRANULARITIES,
        default="hour",
        description="The length of each point's period: an hour or a day (UTC days).",
    ),
    OpenApiParameter(
        "from",
        _TIME_SCHEMA,
        description=f"The range's start, inclusive: {TIME_FORMATS}, from 1970 on. Default: before `to` by "
        f"{_RANGES}. At most {MAX_SERIES_POINTS} periods from `from` to `to`.",
    ),
    OpenApiParameter(
        "to",
        _TIME_SCHEMA,
        description=f"The range's end, exclusive: {TIME_FORMATS}, after `from`. Default: now.",
    ),
]


def _series_query(request: Request) -> tuple[str, datetime, datetime]:
    params = request.query_params
    granularity = params.get("granularity") or "hour"
    if granularity not in GRANULARITIES:
        raise ServiceError(f"granularity must be one of {', '.join(GRANULARITIES)}", field="granularity")
    start = parse_time("from", params["from"]) if params.get("from") else None
    end = parse_time("to", params["to"]) if params.get("to") else None
    start, end = selectors.series_range(granularity, start, end)
    return granularity, start, end


def _series_response(entity: Entity | None, topic: Topic | None, request: Request) -> Response:
    granularity, start, end = _series_query(request)
    buckets = selectors.bucket_series(
        entity=entity, topic=topic, granularity=granularity, start=start, end=end
    )
    return Response(
        {
            "entity": entity.ticker if entity else None,
            "topic": topic.slug if topic else None,
            "granularity": granularity,
            "from": start,
            "to": end,
            "buckets": SeriesPointSerializer(buckets, many=True).data,
        }
    )


def _entity_or_404(ticker: str) -> Entity:
    entity = selectors.entity_by_ticker(ticker)
    if entity is None:
        raise NotFound(f"no entity with ticker {ticker!r}")
    return entity


TICKER_FILTER = OpenApiParameter(
    "ticker",
    OpenApiTypes.STR,
    description="Only those about this entity: its ticker, in any case (`aapl`, `$AAPL`).",
)


# --- views --------------------------------------------------------------------------------------------
TICKER_PATH = OpenApiParameter(
    "ticker",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The entity's ticker, in any case (`aapl`).",
)
ALERT_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The alert's id.")
PUSH_EXAMPLE = OpenApiExample(
    "Two items",
    value={
        "source": "my-feed",
        "items": [
            {
                "title": "Acme beats estimates",
                "url": "https://news.example/acme-q1",
                "published_at": 1714555800,
            },
            {"text": "Acme shares fall after the call", "published_at": "2024-05-01T10:30:00Z"},
        ],
    },
    request_only=True,
)


class ItemListView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.view_item", "sentiment.add_item")]
    pagination_class = Pagination
    # JSON only; a lone surrogate in one item reaches the push service, which rejects that item alone.
    parser_classes = [BatchJSONParser]

    @extend_schema(
        summary="List recent items",
        description=(
            "Ingested items, newest published first, each with its entities and latest score (null until "
            "scored), a page at a time. Answers 404 for an unknown ticker.\n\n"
            "Example: `GET /api/sentiment/items/?ticker=AAPL&limit=20`"
        ),
        parameters=[TICKER_FILTER],
        responses={200: ItemSerializer(many=True), 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        entity = None
        if ticker := request.query_params.get("ticker"):
            entity = _entity_or_404(ticker)
        items = selectors.items_recent(entity=entity, limit=None)
        return self.paginate(items, lambda page: ItemSerializer(page, many=True).data)

    @extend_schema(
        summary="Push items",
        description=(
            f"Stores a batch of up to {uploads.PUSH_MAX_ITEMS} items into a push source (created on first use; "
            "default `api`) and queues them for scoring. An item needs a `text` or a `title`; `published_at` "
            "is ISO 8601 text or Unix seconds (a number, or digits as text), from 1970 to a day from now. Items already "
            "stored (the same URL, or the same source and id) count as duplicates.\n\n"
            "A bad item is rejected alone, with its index and the field at fault; the others are stored "
            "(201). Answers 400 when the body is not a batch, or when no item was accepted (the report comes "
            "with it)."
        ),
        request=PushSerializer,
        responses={201: IngestReportSerializer, 400: IngestRefusedSerializer},
        examples=[PUSH_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise ServiceError("the body must be a JSON object with an `items` list")
        report = uploads.items_push(source_name=body.get("source"), items=body.get("items"))
        accepted = report.created + report.duplicates
        payload = report.as_dict()
        if not accepted:
            payload["detail"] = f"no item was accepted ({len(report.rejected)} rejected)"
            return Response(payload, status=status.HTTP_400_BAD_REQUEST)
        return Response(payload, status=status.HTTP_201_CREATED)


class UploadView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.add_item")]
    parser_classes = [MultiPartParser, FormParser]

    # multipart only: a form without a file part can never be accepted
    @extend_schema(
        summary="Upload a CSV file of items",
        description=(
            f"Ingests a CSV file (at most {uploads.UPLOAD_MAX_BYTES // (1024 * 1024)} MB, "
            f"{uploads.UPLOAD_MAX_ROWS:,} rows) into an upload source (default `upload:<username>`). The header "
            "names the columns: `text` (or `body`, `content`), `title` (or `headline`), `url` (or `link`), "
            "`published_at` (or `date`, `time`, `timestamp`: ISO 8601 or Unix seconds), `language`, `id`. "
            "A bad row is rejected alone, numbered as a spreadsheet shows it (the header is row 1).\n\n"
            "Answers 400 for a file that cannot be read as a whole (not UTF-8 or Latin-1 as `encoding` "
            "says, no usable header, too large)."
        ),
        request={"multipart/form-data": UploadSerializer},
        responses={201: IngestReportSerializer},
    )
    def post(self, request: Request) -> Response:
        data = UploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = uploads.items_upload_file(
            file=data.validated_data["file"],
            source_name=data.validated_data.get("source") or "",
            username=request.user.get_username(),
            encoding=data.validated_data["encoding"],
        )
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)


class EntityListView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.view_entity", "sentiment.add_entity")]
    pagination_class = Pagination

    @extend_schema(
        summary="List the watchlist",
        description="The watched entities by ticker, with their aliases and how many items mention them.",
        responses=EntitySerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        return self.paginate(selectors.entities_list(), lambda page: EntitySerializer(page, many=True).data)

    @extend_schema(
        summary="Add or update a watched entity",
        description=(
            "Creates the entity, or replaces the name, aliases and `active` of the one with this ticker "
            "(`$tsla` and `tsla` are TSLA). Items are matched to entities by ticker, name and aliases. "
            "Answers 400 for a ticker that is not 1-10 letters or digits starting with a letter.\n\n"
            'Example body: `{"ticker": "TSLA", "name": "Tesla", "aliases": ["Tesla Inc."]}`'
        ),
        request=EntityWriteSerializer,
        responses={201: EntitySerializer},
    )
    def post(self, request: Request) -> Response:
        data = EntityWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entity = entity_upsert(**data.validated_data)
        return Response(EntitySerializer(entity).data, status=status.HTTP_201_CREATED)


_SERIES_HOW = (
    "Each point is an hour or a day with items: their count, mean score and negative and positive shares, "
    "with the rolling baseline of each and its z-score (how unusual it is). Periods without items have no "
    f"point. At most {MAX_SERIES_POINTS} periods per request: the range is `from` (inclusive) to `to` "
    "(exclusive), each ISO 8601 or Unix seconds. Answers 400 for a bad granularity or time, a range that "
    "ends before it starts or is too long"
)


class EntitySeriesView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.view_bucket")]

    @extend_schema(
        summary="An entity's sentiment series",
        description=(
            f"The sentiment of the items about one entity over time. {_SERIES_HOW}; 404 for an unknown "
            "ticker.\n\nExample: `GET /api/sentiment/entities/AAPL/series/?granularity=day&from=2024-05-01T00:00:00Z"
            "&to=1717200000`"
        ),
        parameters=[TICKER_PATH, *SERIES_PARAMETERS],
        responses=SeriesSerializer,
    )
    def get(self, request: Request, ticker: str) -> Response:
        return _series_response(_entity_or_404(ticker), None, request)


class SeriesView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.view_bucket")]

    @extend_schema(
        summary="A topic's, an entity's or everything's sentiment series",
        description=(
            "The sentiment over time of a topic's items, of an entity's, or (neither given) of every item. "
            f"{_SERIES_HOW}; 404 for an unknown topic or ticker.\n\n"
            "Example: `GET /api/sentiment/series/?topic=earnings&granularity=hour`"
        ),
        parameters=[
            *SERIES_PARAMETERS,
            OpenApiParameter("topic", OpenApiTypes.STR, description="A topic's slug (`earnings`)."),
            OpenApiParameter("ticker", OpenApiTypes.STR, description="An entity's ticker, in any case."),
        ],
        responses={200: SeriesSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        topic = entity = None
        if slug := request.query_params.get("topic"):
            topic = selectors.topic_by_slug(slug)
            if topic is None:
                raise NotFound(f"no topic {slug!r}")
        if ticker := request.query_params.get("ticker"):
            entity = _entity_or_404(ticker)
        return _series_response(entity, topic, request)


# --- alerts -------------------------------------------------------------------------------------------
class AlertItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = ["id", "title", "url", "published_at"]
        read_only_fields = fields


class AlertRuleSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    condition = serializers.ChoiceField(choices=AlertRule.Condition.choices)


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.SerializerMethodField()
    entity = serializers.CharField(source="entity.ticker", default=None, read_only=True, allow_null=True)
    topic = serializers.CharField(source="topic.slug", default=None, read_only=True, allow_null=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", default=None, read_only=True, allow_null=True
    )
    resolved_by = serializers.CharField(
        source="resolved_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "entity", "topic", "status", "severity", "value", "detail", "fired_at",
            "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(AlertRuleSummarySerializer)
    def get_rule(self, obj: Alert) -> dict[str, Any]:
        return {"id": obj.rule_id, "name": obj.rule.name, "condition": obj.rule.condition}


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "ok", "status_code", "error", "duration_ms", "at"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    channel = serializers.SerializerMethodField()
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "channel", "channel_type", "event", "status", "attempts", "next_attempt_at", "sent_at",
                  "attempt_log"]  # fmt: skip
        read_only_fields = fields

    def get_channel(self, obj: Delivery) -> str:
        return channel_label(obj.channel)  # never the secret


class AlertDetailSerializer(AlertSerializer):
    items = AlertItemSerializer(many=True, read_only=True)
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "items", "deliveries"]
        read_only_fields = fields


class AlertListView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.view_alert")]
    pagination_class = Pagination

    @extend_schema(
        summary="List alerts",
        description=(
            "Alerts newest fired first, a page at a time; by default the open ones (fired or acknowledged). "
            "Answers 400 for an unknown status, 404 for an unknown ticker.\n\n"
            "Example: `GET /api/sentiment/alerts/?status=all&ticker=AAPL`"
        ),
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                enum=list(selectors.ALERT_FILTERS),
                default="open",
                description="`open` (fired or acknowledged), one state, or `all`.",
            ),
            TICKER_FILTER,
        ],
        responses={200: AlertSerializer(many=True), 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", "open")
        if status not in selectors.ALERT_FILTERS:
            raise ServiceError(f"status is one of {', '.join(selectors.ALERT_FILTERS)}", field="status")
        entity = None
        if ticker := request.query_params.get("ticker"):
            entity = _entity_or_404(ticker)
        alerts = selectors.alerts(status=status, entity=entity)
        return self.paginate(alerts, lambda page: AlertSerializer(page, many=True).data)


class AlertDetailView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.view_alert")]

    @extend_schema(
        summary="Read an alert",
        description=(
            "An alert with the items that made it fire and its deliveries (each attempt, never a channel's "
            "secret). Answers 404 for an unknown id."
        ),
        parameters=[ALERT_ID],
        responses=AlertDetailSerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            alert = selectors.alert_detail(pk=pk)
        except Alert.DoesNotExist:
            return Response({"detail": "No such alert."}, status=404)
        return Response(AlertDetailSerializer(alert).data)


class AlertAcknowledgeView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.change_alert")]

    @extend_schema(
        summary="Acknowledge an alert",
        description=(
            "Marks a fired alert as seen by the caller; it stays open until resolved. Answers 400 when it "
            "is already acknowledged or resolved, 404 for an unknown id."
        ),
        parameters=[ALERT_ID],
        request=None,
        responses=AlertSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        alert = alert_services.alert_acknowledge(alert=get_object_or_404(Alert, pk=pk), user=request.user)
        return Response(AlertSerializer(selectors.alerts(status="all").get(pk=alert.pk)).data)


class AlertResolveView(ApiView):
    permission_classes = [IsAuthenticated, require("sentiment.change_alert")]

    @extend_schema(
        summary="Resolve an alert",
        description=(
            "Closes an open alert by hand; the rule's cooldown starts now. Answers 400 when it is already "
            "resolved, 404 for an unknown id."
        ),
        parameters=[ALERT_ID],
        request=None,
        responses=AlertSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        alert = alert_services.alert_resolve(alert=get_object_or_404(Alert, pk=pk), user=request.user)
        return Response(AlertSerializer(selectors.alerts(status="all").get(pk=alert.pk)).data)
