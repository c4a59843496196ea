"""HTTP API of the sentiment app, mounted at /api/sentiment/."""

from django.urls import path

urlpatterns: list = []

# Alerts (the alerting half: apps/sentiment/api_alerts.py).
from apps.sentiment import api_alerts  # noqa: E402

urlpatterns += [
    path("alerts/", api_alerts.AlertListView.as_view(), name="api-sentiment-alerts"),
    path("alerts/<int:pk>/", api_alerts.AlertDetailView.as_view(), name="api-sentiment-alert"),
    path(
        "alerts/<int:pk>/acknowledge/",
        api_alerts.AlertAcknowledgeView.as_view(),
        name="api-sentiment-alert-acknowledge",
    ),
    path(
        "alerts/<int:pk>/resolve/", api_alerts.AlertResolveView.as_view(), name="api-sentiment-alert-resolve"
    ),
]
