"""HTTP API of the core app, mounted at /api/ (CoreConfig.api_urls)."""

from django.urls import path

from apps.core import api

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="api-token"),
    path("jobs/", api.JobListView.as_view(), name="api-jobs"),
    path("jobs/<int:pk>/", api.JobDetailView.as_view(), name="api-job"),
    path("jobs/<int:pk>/cancel/", api.JobCancelView.as_view(), name="api-job-cancel"),
    path("jobs/<int:pk>/retry/", api.JobRetryView.as_view(), name="api-job-retry"),
    path("models/", api.ModelListView.as_view(), name="api-models"),
    path("models/<int:pk>/promote/", api.ModelPromoteView.as_view(), name="api-model-promote"),
    path("models/rollback/", api.ModelRollbackView.as_view(), name="api-model-rollback"),
    path("prompts/", api.PromptListView.as_view(), name="api-prompts"),
    path("prompts/<slug:name>/", api.PromptDetailView.as_view(), name="api-prompt"),
    path("prompts/<slug:name>/labels/<slug:label>/", api.PromptLabelView.as_view(), name="api-prompt-label"),
    path("prompts/<slug:name>/render/", api.PromptRenderView.as_view(), name="api-prompt-render"),
]
