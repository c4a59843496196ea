"""Core rows: training jobs, the model registry, prompt templates and worker heartbeats."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class TrainingJob(models.Model):
    """A long-running job (fine-tuning, index build, import) with its progress, shown as a progress bar."""

    kind = models.CharField(max_length=64)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]
        permissions = [
            ("run_trainingjob", "Can start and cancel training jobs"),
            ("view_all_trainingjob", "Can see every user's jobs, and the server paths in jobs and models"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def percent(self) -> int:
        if self.status == JobStatus.SUCCEEDED:
            return 100
        if not self.total_steps:
            return 0
        return min(100, int(100 * self.step / self.total_steps))


class ModelVersion(models.Model):
    """One trained artifact directory (weights, tokenizer, meta.json) registered for a task."""

    task = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    artifact_dir = models.CharField(max_length=500)
    meta = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey(TrainingJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["task", "version"], name="model_version_unique"),
            models.UniqueConstraint(fields=["artifact_dir"], name="model_version_one_per_artifact"),
            models.UniqueConstraint(
                fields=["task"], condition=Q(is_active=True), name="one_active_model_per_task"
            ),
        ]
        permissions = [("promote_modelversion", "Can promote and roll back model versions")]

    def __str__(self) -> str:
        return f"{self.task} v{self.version}"


class ModelPromotion(models.Model):
    """Audit trail of activations; roll-back re-activates the version that was active before."""

    task = models.CharField(max_length=64)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="promotions")
    previous = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, choices=[("promote", "Promote"), ("rollback", "Roll back")])
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.task} v{self.version.version}"


class PromptTemplate(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("label_prompttemplate", "Can move prompt labels")]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """An immutable body of a template. Editing a template creates a new version."""

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    body = models.TextField()
    note = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [models.UniqueConstraint(fields=["template", "number"], name="prompt_version_unique")]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.number}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValidationError("Prompt versions are immutable: edit the template to create a new version.")
        super().save(*args, **kwargs)


class PromptLabel(models.Model):
    """A movable name (production, staging) for a version, optionally splitting traffic with a second one."""

    class Name(models.TextChoices):
        PRODUCTION = "production", "production"
        STAGING = "staging", "staging"

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=32, choices=Name.choices)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")
    split_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    split_percent = models.PositiveSmallIntegerField(default=0)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["template", "name"], name="prompt_label_unique"),
            models.CheckConstraint(condition=Q(split_percent__lte=100), name="prompt_split_percent_range"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name}@{self.name}"


class PromptLabelEvent(models.Model):
    """History of label moves, so a roll-back is visible and auditable."""

    label = models.ForeignKey(PromptLabel, on_delete=models.CASCADE, related_name="events")
    from_version = models.ForeignKey(PromptVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    to_version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="+")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.label} -> v{self.to_version.number}"


class WorkerHeartbeat(models.Model):
    """Last sign of life of a Celery worker (or beat), written by a thread in that process."""

    hostname = models.CharField(max_length=200, unique=True)
    queues = models.JSONField(default=list)
    pid = models.PositiveIntegerField(default=0)
    last_seen = models.DateTimeField()
    started_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.hostname


class LiveEvent(models.Model):
    """A live update on its way between processes, for the embedded default's channel layer only
    (apps.core.live_layer; with Redis, pub/sub carries them and this table stays empty). Kept minutes."""

    group = models.CharField(max_length=100)
    message = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.group} #{self.pk}"
