"""Alerts API (token or session auth): list alerts, read one with its items and deliveries, acknowledge, resolve.

    GET  /api/sentiment/alerts/?status=open|fired|acknowledged|resolved|all&ticker=AAPL&limit=50
    GET  /api/sentiment/alerts/<id>/
    POST /api/sentiment/alerts/<id>/acknowledge/
    POST /api/sentiment/alerts/<id>/resolve/

Reading needs `sentiment.view_alert`, acting `sentiment.change_alert` (analysts and admins). Acting on an alert
in the wrong state answers 400 with a readable `detail`.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import require
from apps.sentiment import selectors
from apps.sentiment.models import Alert, Delivery, DeliveryAttempt, Entity, Item
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services.delivery import channel_label


class AlertItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = ["id", "title", "url", "published_at"]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.SerializerMethodField()
    entity = serializers.CharField(source="entity.ticker", default=None, read_only=True)
    topic = serializers.CharField(source="topic.slug", default=None, read_only=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None, read_only=True)
    resolved_by = serializers.CharField(source="resolved_by.username", default=None, read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id", "rule", "entity", "topic", "status", "severity", "value", "detail", "fired_at",
            "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
        ]  # fmt: skip
        read_only_fields = fields

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
            OpenApiParameter("limit", OpenApiTypes.INT),
        ],
        responses=AlertSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status", "open")
        if status not in selectors.ALERT_FILTERS:
            return Response({"detail": f"status is one of {', '.join(selectors.ALERT_FILTERS)}"}, status=400)
        entity = None
        if ticker := request.query_params.get("ticker"):
            entity = get_object_or_404(Entity, ticker=ticker.upper())
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
