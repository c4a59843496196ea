"""HTTP API of the sentiment app, mounted at /api/sentiment/ (SentimentConfig.api_prefix)."""

from django.urls import path

from apps.sentiment import api

urlpatterns: list = [
    path("items/", api.ItemListView.as_view(), name="api-sentiment-items"),
    path("uploads/", api.UploadView.as_view(), name="api-sentiment-uploads"),
    path("entities/", api.EntityListView.as_view(), name="api-sentiment-entities"),
    path("entities/<str:ticker>/series/", api.EntitySeriesView.as_view(), name="api-sentiment-entity-series"),
    path("series/", api.SeriesView.as_view(), name="api-sentiment-series"),
    path("alerts/", api.AlertListView.as_view(), name="api-sentiment-alerts"),
    path("alerts/<int:pk>/", api.AlertDetailView.as_view(), name="api-sentiment-alert"),
    path(
        "alerts/<int:pk>/acknowledge/",
        api.AlertAcknowledgeView.as_view(),
        name="api-sentiment-alert-acknowledge",
    ),
    path("alerts/<int:pk>/resolve/", api.AlertResolveView.as_view(), name="api-sentiment-alert-resolve"),
]
