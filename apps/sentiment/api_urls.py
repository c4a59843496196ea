"""HTTP API of the sentiment app, mounted at /api/sentiment/."""

from django.urls import path

from apps.sentiment import api

urlpatterns: list = [
    path("items/", api.ItemListView.as_view(), name="api-sentiment-items"),
    path("uploads/", api.UploadView.as_view(), name="api-sentiment-uploads"),
    path("entities/", api.EntityListView.as_view(), name="api-sentiment-entities"),
    path("entities/<str:ticker>/series/", api.EntitySeriesView.as_view(), name="api-sentiment-entity-series"),
    path("series/", api.SeriesView.as_view(), name="api-sentiment-series"),
]

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
