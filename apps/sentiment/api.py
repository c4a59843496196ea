"""HTTP API of the sentiment app (token or session auth), mounted at /api/sentiment/.

    POST /api/sentiment/items/                       push a JSON batch: {"source": "my-feed", "items": [...]}
    GET  /api/sentiment/items/?ticker=AAPL&limit=50  recent items with their latest score
    POST /api/sentiment/uploads/                     CSV upload (multipart: file, source, encoding)
    GET  /api/sentiment/entities/                    the watchlist;  POST: add or update an entity
    GET  /api/sentiment/entities/<ticker>/series/?granularity=hour|day&from=ISO&to=ISO
    GET  /api/sentiment/series/?granularity=hour&topic=earnings   the series of a topic, or of everything
    GET  /api/sentiment/alerts/?status=open|fired|acknowledged|resolved|all&ticker=AAPL&limit=50
    GET  /api/sentiment/alerts/<id>/                 an alert with its items and deliveries
    POST /api/sentiment/alerts/<id>/acknowledge/
    POST /api/sentiment/alerts/<id>/resolve/

Writes need `sentiment.add_item` / `sentiment.add_entity` / `sentiment.change_alert`, reads the matching
`view_` permission (analysts and admins). Input problems, and acting on an alert in the wrong state, answer
400 with a readable `detail`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import require
from apps.core.api_schema import ErrorSerializer
from apps.core.errors import ServiceError
from apps.core.parsers import BatchJSONParser
from apps.sentiment import selectors
from apps.sentiment.models import Alert, AlertRule, Bucket, Delivery, DeliveryAttempt, Entity, Item, Topic
from apps.sentiment.series_math import zscore
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import uploads
from apps.sentiment.services.delivery import channel_label
from apps.sentiment.services.entities import entity_upsert

# --- serializers --------------------------------------------------------------------------------------
# The schema of a push request, built from the constants and the field table the push service validates
# against (services/uploads.py), so the two cannot disagree. Documentation only: the service validates, so
# that a bad item is rejected alone, with its index.
PushItemSerializer = type(
    "PushItemSerializer",
    (serializers.Serializer,),
    {
        name: serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text=help_text)
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


class ZScoresSerializer(serializers.Serializer):
    """How far a bucket's statistics lie from their baseline, in standard deviations (null: no baseline yet)."""

    count = serializers.FloatField(allow_null=True)
    mean_score = serializers.FloatField(allow_null=True)
    negative_share = serializers.FloatField(allow_null=True)
    positive_share = serializers.FloatField(allow_null=True)


class BucketSerializer(serializers.ModelSerializer):
    z = serializers.SerializerMethodField()

    class Meta:
        model = Bucket
        fields = ["start", "count", "mean_score", "negative_share", "positive_share", "negative", "positive",
                  "baseline", "z"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(ZScoresSerializer)
    def get_z(self, obj: Bucket) -> dict[str, float | None]:
        return {
            stat: zscore(obj, stat) for stat in ("count", "mean_score", "negative_share", "positive_share")
        }


class SeriesQuerySerializer(serializers.Serializer):
    granularity = serializers.ChoiceField(choices=["hour", "day"], required=False, default="hour")
    # `from` is a Python keyword: read from the query string by name in _series_query
    to = serializers.DateTimeField(required=False)


# The answer of the series endpoints. Built with type() because one field is named `from`, a keyword.
SeriesSerializer = type(
    "SeriesSerializer",
    (serializers.Serializer,),
    {
        "entity": serializers.CharField(
            allow_null=True, help_text="The entity's ticker, if one was asked for."
        ),
        "topic": serializers.CharField(allow_null=True, help_text="The topic's slug, if one was asked for."),
        "granularity": serializers.ChoiceField(choices=["hour", "day"]),
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(help_text="Exclusive."),
        "buckets": BucketSerializer(many=True),
    },
)
SERIES_PARAMETERS = [
    OpenApiParameter("granularity", OpenApiTypes.STR, enum=["hour", "day"], default="hour"),
    OpenApiParameter("from", OpenApiTypes.DATETIME, description="ISO 8601; default: a range back from `to`."),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="ISO 8601, exclusive; default: now."),
]


def _series_query(request: Request) -> tuple[str, datetime, datetime]:
    params = request.query_params
    data = SeriesQuerySerializer(data={k: v for k, v in params.items() if k in ("granularity", "to")})
    data.is_valid(raise_exception=True)
    start = None
    if params.get("from"):
        field = serializers.DateTimeField()
        try:
            start = field.to_internal_value(params["from"])
        except serializers.ValidationError:
            raise ServiceError("`from` must be an ISO 8601 date-time", field="from") from None
    granularity = data.validated_data["granularity"]
    start, end = selectors.series_range(granularity, start, data.validated_data.get("to"))
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
            "buckets": BucketSerializer(buckets, many=True).data,
        }
    )


def _entity_or_404(ticker: str) -> Entity:
    entity = selectors.entity_by_ticker(ticker)
    if entity is None:
        raise NotFound(f"no entity with ticker {ticker!r}")
    return entity


# --- views --------------------------------------------------------------------------------------------
class ItemListView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.view_item", "sentiment.add_item")]
    # JSON only; a lone surrogate in one item reaches the push service, which rejects that item alone.
    parser_classes = [BatchJSONParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("ticker", OpenApiTypes.STR, description="Only items about this entity."),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description="How many, at most (default 50, clamped to 1-200)."
            ),
        ],
        responses={200: ItemSerializer(many=True), 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        entity = None
        if ticker := request.query_params.get("ticker"):
            entity = _entity_or_404(ticker)
        try:
            limit = max(1, min(200, int(request.query_params.get("limit", 50))))
        except ValueError:
            raise ServiceError("limit must be an integer", field="limit") from None
        return Response(ItemSerializer(selectors.items_recent(entity=entity, limit=limit), many=True).data)

    @extend_schema(
        request=PushSerializer, responses={201: IngestReportSerializer, 400: IngestRefusedSerializer}
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


class UploadView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.add_item")]
    parser_classes = [MultiPartParser, FormParser]

    # multipart only: a form without a file part can never be accepted
    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={201: IngestReportSerializer})
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


class EntityListView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.view_entity", "sentiment.add_entity")]

    @extend_schema(responses=EntitySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(EntitySerializer(selectors.entities_list(), many=True).data)

    @extend_schema(request=EntityWriteSerializer, responses={201: EntitySerializer})
    def post(self, request: Request) -> Response:
        data = EntityWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entity = entity_upsert(**data.validated_data)
        return Response(EntitySerializer(entity).data, status=status.HTTP_201_CREATED)


class EntitySeriesView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.view_bucket")]

    @extend_schema(parameters=SERIES_PARAMETERS, responses=SeriesSerializer)
    def get(self, request: Request, ticker: str) -> Response:
        return _series_response(_entity_or_404(ticker), None, request)


class SeriesView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.view_bucket")]

    @extend_schema(
        parameters=[
            *SERIES_PARAMETERS,
            OpenApiParameter("topic", OpenApiTypes.STR, description="A topic's slug."),
            OpenApiParameter("ticker", OpenApiTypes.STR, description="An entity's ticker."),
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


class AlertListView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.view_alert")]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(selectors.ALERT_FILTERS)),
            OpenApiParameter("ticker", OpenApiTypes.STR),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description="How many, at most (default 50, clamped to 1-200)."
            ),
        ],
        responses={200: AlertSerializer(many=True), 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", "open")
        if status not in selectors.ALERT_FILTERS:
            return Response({"detail": f"status is one of {', '.join(selectors.ALERT_FILTERS)}"}, status=400)
        entity = None
        if ticker := request.query_params.get("ticker"):
            entity = _entity_or_404(ticker)
        try:
            limit = max(1, min(int(request.query_params.get("limit", 50)), 200))
        except ValueError:
            return Response({"detail": "limit is a number from 1 to 200"}, status=400)
        qs = selectors.alerts(status=status, entity=entity)[:limit]
        return Response(AlertSerializer(qs, many=True).data)


class AlertDetailView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.view_alert")]

    @extend_schema(responses=AlertDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        try:
            alert = selectors.alert_detail(pk=pk)
        except Alert.DoesNotExist:
            return Response({"detail": "No such alert."}, status=404)
        return Response(AlertDetailSerializer(alert).data)


class AlertAcknowledgeView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.change_alert")]

    @extend_schema(request=None, responses=AlertSerializer)
    def post(self, request: Request, pk: int) -> Response:
        alert = alert_services.alert_acknowledge(alert=get_object_or_404(Alert, pk=pk), user=request.user)
        return Response(AlertSerializer(selectors.alerts(status="all").get(pk=alert.pk)).data)


class AlertResolveView(APIView):
    permission_classes = [IsAuthenticated, require("sentiment.change_alert")]

    @extend_schema(request=None, responses=AlertSerializer)
    def post(self, request: Request, pk: int) -> Response:
        alert = alert_services.alert_resolve(alert=get_object_or_404(Alert, pk=pk), user=request.user)
        return Response(AlertSerializer(selectors.alerts(status="all").get(pk=alert.pk)).data)
