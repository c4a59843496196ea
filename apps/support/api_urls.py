"""HTTP API of the support app, mounted at /api/support/ (SupportConfig.api_prefix)."""

from django.urls import path

from apps.support import api

_KB = "knowledge-bases/<slug:slug>/documents/"

urlpatterns: list = [
    path("knowledge-bases/", api.KnowledgeBaseListView.as_view(), name="api-support-kbs"),
    path(_KB, api.DocumentListView.as_view(), name="api-support-documents"),
    path(f"{_KB}upload/", api.DocumentUploadView.as_view(), name="api-support-document-upload"),
    path(f"{_KB}<int:pk>/", api.DocumentDetailView.as_view(), name="api-support-document"),
    path(
        f"{_KB}by-external-id/<path:external_id>/",
        api.DocumentByExternalIdView.as_view(),
        name="api-support-document-external",
    ),
]
