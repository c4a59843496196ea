"""HTTP API of the sentiment app, mounted at /api/sentiment/."""

from django.urls import path  # noqa: F401  (routes are added below)

urlpatterns: list = []
