from django.urls import path

from apps.core import live, views

app_name = "core"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("live/", live.live_stream, name="live"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/params/", views.job_params, name="job_params"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:pk>/retry/", views.job_retry, name="job_retry"),
    path("models/", views.models_page, name="models"),
    path("models/<int:pk>/promote/", views.model_promote, name="model_promote"),
    path("models/rollback/<slug:task>/", views.model_rollback, name="model_rollback"),
    path("prompts/", views.prompts, name="prompts"),
    path("prompts/<slug:name>/", views.prompt_detail, name="prompt"),
    path("prompts/<slug:name>/diff/", views.prompt_diff, name="prompt_diff"),
    path("prompts/<slug:name>/v<int:number>/preview/", views.prompt_preview, name="prompt_preview"),
    path("prompts/<slug:name>/labels/", views.prompt_label, name="prompt_label"),
]
