"""HTTP API of the core app: the token endpoint, jobs, the model registry, prompts.

Each operation says in its `@extend_schema` what it does and which errors it answers beyond the common ones
(apps.core.api_schema adds who may call it, and documents every error response); the docs at /api/docs/ are
built from these.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core import selectors
from apps.core.access import PUBLIC, Access, access
from apps.core.api_filters import ApiView, Pagination
from apps.core.models import JobStatus, ModelVersion, PromptLabel, PromptTemplate, PromptVersion, TrainingJob
from apps.core.parsers import lone_surrogate_path
from apps.core.server_paths import shown_to
from apps.core.services import jobs as job_services
from apps.core.services import prompts as prompt_services
from apps.core.services import registry as registry_services


def require(read: str, write: str | None = None) -> type[BasePermission]:
    """A permission class: `read` for safe methods, `write` (default: same) for the others."""

    class _Perm(BasePermission):
        def has_permission(self, request: Request, view: Any) -> bool:
            perm = read if request.method in ("GET", "HEAD", "OPTIONS") else (write or read)
            return bool(request.user and request.user.is_authenticated and request.user.has_perm(perm))

    _Perm.__name__ = f"Require_{(write or read).replace('.', '_')}"
    _Perm.access = Access(read, write)  # type: ignore[attr-defined]  # what the authorization matrix expects
    return _Perm


# --- serializers --------------------------------------------------------------------------------------
class JobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "kind",
            "params",
            "status",
            "step",
            "total_steps",
            "percent",
            "loss",
            "eta_seconds",
            "metrics",
            "result",
            "log_tail",
            "error",
            "cancel_requested",
            "attempts",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class JobCreateSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=64)
    params = serializers.DictField(required=False, default=dict)


class ModelVersionSerializer(serializers.ModelSerializer):
    promoted_by = serializers.CharField(
        source="promoted_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "task",
            "version",
            "is_active",
            "metrics",
            "meta",
            "artifact_dir",
            "promoted_by",
            "promoted_at",
            "created_at",
        ]
        read_only_fields = fields


class RollbackSerializer(serializers.Serializer):
    task = serializers.CharField(max_length=64)


class PromptVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromptVersion
        fields = ["number", "body", "note", "created_at"]
        read_only_fields = fields


class PromptLabelSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.number")
    split_version = serializers.IntegerField(source="split_version.number", default=None, allow_null=True)

    class Meta:
        model = PromptLabel
        fields = ["name", "version", "split_version", "split_percent", "updated_at"]
        read_only_fields = fields


class PromptTemplateSerializer(serializers.ModelSerializer):
    labels = PromptLabelSerializer(many=True, read_only=True)
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = PromptTemplate
        fields = ["name", "description", "labels", "latest_version", "created_at"]
        read_only_fields = fields

    def get_latest_version(self, obj: PromptTemplate) -> int | None:
        latest = obj.versions.order_by("-number").first()
        return latest.number if latest else None


class PromptDetailSerializer(PromptTemplateSerializer):
    """A template with every version (the answer of GET /api/prompts/<name>/)."""

    versions = PromptVersionSerializer(many=True, read_only=True)

    class Meta(PromptTemplateSerializer.Meta):
        fields = [*PromptTemplateSerializer.Meta.fields, "versions"]
        read_only_fields = fields


class PromptCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    body = serializers.CharField()


class PromptEditSerializer(serializers.Serializer):
    body = serializers.CharField()
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class LabelMoveSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    split_version = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    split_percent = serializers.IntegerField(min_value=0, max_value=100, required=False, default=0)


class RenderSerializer(serializers.Serializer):
    variables = serializers.DictField(required=False, default=dict)
    version = serializers.IntegerField(min_value=1, required=False)
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=PromptLabel.Name.values, required=False, default="production"
    )

    def validate_variables(self, value: dict[str, Any]) -> dict[str, Any]:
        # A lone surrogate cannot be rendered into text that is answered as UTF-8 (the JSON parser refuses it
        # too; this holds for any parser).
        if (path := lone_surrogate_path(value)) is not None:
            raise serializers.ValidationError(f"{path or 'a key'} holds a lone surrogate: send valid text")
        return value


class RenderResultSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The number of the version that was rendered.")
    text = serializers.CharField(allow_blank=True)


# --- path parameters ----------------------------------------------------------------------------------
JOB_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The job's id.")
MODEL_VERSION_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The model version's id (not its number)."
)
PROMPT_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The template's name, a slug (`faq`)."
)


# --- token --------------------------------------------------------------------------------------------
@access(PUBLIC)
class TokenView(ObtainAuthToken):
    """A token for a username and password; wrong passwords count towards a lock-out (LOGIN_FAILURE_LIMIT)."""

    @extend_schema(
        summary="Get an API token",
        description=(
            "Exchanges a username and password (form fields or JSON) for the user's API token, the same "
            "token on every call until an admin deletes it. Send it on every other call as "
            "`Authorization: Bearer <token>` (or `Authorization: Token <token>`); in these docs, paste it "
            "into **Authorize**.\n\n"
            "Answers 400 for a wrong username or password, and 429 once a username has had "
            f"{settings.AXES_FAILURE_LIMIT} wrong passwords from one address (locked for "
            f"{round(settings.AXES_COOLOFF_TIME * 60)} minutes).\n\n"
            "Example:\n\n"
            "    curl -X POST -d username=ana -d password=… https://contexta.example/api/auth/token/\n"
            '    {"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"}'
        ),
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid() and getattr(request, "axes_locked_out", False):
            # The axes backend refused even to check the password: say so, rather than "wrong password".
            raise Throttled(
                wait=settings.AXES_COOLOFF_TIME * 3600,
                detail="Too many failed logins for this username from this address.",
            )
        serializer.is_valid(raise_exception=True)
        # As DRF's view does, from the one authentication above (super().post would check the password again).
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


# --- jobs ---------------------------------------------------------------------------------------------
class JobListView(ApiView):
    permission_classes = [IsAuthenticated, require("core.view_trainingjob", "core.run_trainingjob")]
    pagination_class = Pagination

    @extend_schema(
        summary="List jobs",
        description=(
            "Jobs newest first, one page at a time: admins see every job, others their own and the suite's "
            "(scheduled) ones. Server paths and tracebacks are shown to admins only.\n\n"
            "Example: `GET /api/jobs/?status=failed&kind=text_classifier&limit=20`"
        ),
        parameters=[
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=JobStatus.values, description="Only jobs in this state."
            ),
            OpenApiParameter(
                "kind", OpenApiTypes.STR, description="Only jobs of this kind (`text_classifier`)."
            ),
        ],
        responses=JobSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = selectors.jobs_list(
            user=request.user,
            status=request.query_params.get("status"),
            kind=request.query_params.get("kind"),
        )

        def render(page: list[TrainingJob]) -> Any:
            return JobSerializer([selectors.job_as_seen_by(request.user, j) for j in page], many=True).data

        return self.paginate(qs, render)

    @extend_schema(
        summary="Start a job",
        description=(
            "Queues a job of a kind with its parameters (each kind's parameters are on the dashboard's Jobs "
            "form); a worker picks it up. Poll `GET /api/jobs/{id}/` for its progress.\n\n"
            "Answers 400 for an unknown kind or a bad parameter (the message names it), 403 when the job "
            "would do something the caller may not (promote a model, say), and 429 when the caller, or "
            "everyone, already has the kind's most jobs queued or running.\n\n"
            "Example body:\n\n"
            '    {"kind": "text_classifier", "params": {"dataset": "tfns", "epochs": 1, "max_examples": 200}}'
        ),
        request=JobCreateSerializer,
        responses={201: JobSerializer},
    )
    def post(self, request: Request) -> Response:
        data = JobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = job_services.job_create(user=request.user, **data.validated_data)
        return Response(
            JobSerializer(selectors.job_as_seen_by(request.user, job)).data, status=status.HTTP_201_CREATED
        )


class JobDetailView(ApiView):
    permission_classes = [IsAuthenticated, require("core.view_trainingjob")]

    @extend_schema(
        summary="Read a job",
        description=(
            "One job with its progress (`step`, `total_steps`, `percent`, `eta_seconds`), loss, metrics, result "
            "and the tail of its log. Answers 404 for a job that does not exist or that the caller may not see."
        ),
        parameters=[JOB_ID],
        responses=JobSerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobSerializer(selectors.job_visible_to(request.user, pk)).data)


class JobCancelView(ApiView):
    permission_classes = [IsAuthenticated, require("core.run_trainingjob")]

    @extend_schema(
        summary="Cancel a job",
        description=(
            "A pending job is cancelled at once; a running one is asked to stop, and stops after its current "
            "step (`cancel_requested` is true until then). Answers 400 for a job that has already finished, "
            "404 for one the caller may not see."
        ),
        parameters=[JOB_ID],
        request=None,
        responses=JobSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        job = job_services.job_cancel(job=get_object_or_404(selectors.jobs_visible_to(request.user), pk=pk))
        return Response(JobSerializer(selectors.job_as_seen_by(request.user, job)).data)


class JobRetryView(ApiView):
    """Run a failed or cancelled job again: a new job of its kind and parameters."""

    permission_classes = [IsAuthenticated, require("core.run_trainingjob")]

    @extend_schema(
        summary="Run a job again",
        description=(
            "Starts a new job with the kind and parameters of a failed or cancelled one, checked like any new "
            "job (permissions, quotas). Answers 400 for a job that is pending, running or succeeded, 404 for "
            "one the caller may not see, 429 when a quota is spent."
        ),
        parameters=[JOB_ID],
        request=None,
        responses={201: JobSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        job = get_object_or_404(selectors.jobs_visible_to(request.user), pk=pk)
        again = job_services.job_retry(job=job, user=request.user)
        return Response(
            JobSerializer(selectors.job_as_seen_by(request.user, again)).data, status=status.HTTP_201_CREATED
        )


# --- model registry -----------------------------------------------------------------------------------
class ModelListView(ApiView):
    permission_classes = [IsAuthenticated, require("core.view_modelversion")]
    pagination_class = Pagination

    @extend_schema(
        summary="List model versions",
        description=(
            "The registered versions of every task's model, by task and newest version first; `is_active` "
            "marks the one that serves. Artifact paths are shown to admins only.\n\n"
            "Example: `GET /api/models/?task=tfns-classifier`"
        ),
        parameters=[
            OpenApiParameter(
                "task", OpenApiTypes.STR, description="Only this task's versions (`tfns-classifier`)."
            )
        ],
        responses=ModelVersionSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = ModelVersion.objects.select_related("promoted_by")
        if task := request.query_params.get("task"):
            qs = qs.filter(task=task)
        return self.paginate(
            qs, lambda page: shown_to(request.user, ModelVersionSerializer(page, many=True).data)
        )


class ModelPromoteView(ApiView):
    permission_classes = [IsAuthenticated, require("core.promote_modelversion")]

    @extend_schema(
        summary="Promote a model version",
        description=(
            "Makes this version the one that serves its task (the previous one stays registered, for a "
            "rollback). Answers 400 when it is already active or its artifacts cannot be read, 404 for an "
            "unknown id."
        ),
        parameters=[MODEL_VERSION_ID],
        request=None,
        responses=ModelVersionSerializer,
    )
    def post(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(ModelVersion, pk=pk)
        version = registry_services.model_version_promote(version=version, user=request.user)
        return Response(shown_to(request.user, ModelVersionSerializer(version).data))


class ModelRollbackView(ApiView):
    permission_classes = [IsAuthenticated, require("core.promote_modelversion")]

    @extend_schema(
        summary="Roll a task back to its previous model",
        description=(
            "Re-activates the version that served a task before the current one, and answers it. Answers "
            '400 when the task has no earlier active version.\n\nExample body: `{"task": "tfns-classifier"}`'
        ),
        request=RollbackSerializer,
        responses=ModelVersionSerializer,
    )
    def post(self, request: Request) -> Response:
        data = RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = registry_services.model_version_rollback(
            task=data.validated_data["task"], user=request.user
        )
        return Response(shown_to(request.user, ModelVersionSerializer(version).data))


# --- prompts ------------------------------------------------------------------------------------------
class PromptListView(ApiView):
    permission_classes = [IsAuthenticated, require("core.view_prompttemplate", "core.add_promptversion")]
    pagination_class = Pagination

    @extend_schema(
        summary="List prompt templates",
        description="Every prompt template by name, with its labels and latest version number.",
        responses=PromptTemplateSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            selectors.prompt_templates(), lambda page: PromptTemplateSerializer(page, many=True).data
        )

    @extend_schema(
        summary="Create a prompt template",
        description=(
            "A new template with its first version, which both labels (`production`, `staging`) point to. "
            "The body is a Jinja-like template; `{{ name }}` is a variable. Answers 400 when the name is "
            "taken or not a slug, or the body does not parse.\n\n"
            'Example body: `{"name": "faq", "description": "Answers from the FAQ", "body": "Q: {{ q }}"}`'
        ),
        request=PromptCreateSerializer,
        responses={201: PromptTemplateSerializer},
    )
    def post(self, request: Request) -> Response:
        data = PromptCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = prompt_services.prompt_template_create(user=request.user, **data.validated_data)
        return Response(PromptTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class PromptDetailView(ApiView):
    permission_classes = [IsAuthenticated, require("core.view_prompttemplate", "core.add_promptversion")]

    @extend_schema(
        operation_id="prompts_retrieve",
        summary="Read a prompt template",
        description="A template with its labels and every version, newest first. Answers 404 for an unknown name.",
        parameters=[PROMPT_NAME],
        responses=PromptDetailSerializer,
    )
    def get(self, request: Request, name: str) -> Response:
        template = get_object_or_404(PromptTemplate, name=name)
        return Response(
            {
                **PromptTemplateSerializer(template).data,
                "versions": PromptVersionSerializer(template.versions.all(), many=True).data,
            }
        )

    @extend_schema(
        operation_id="prompts_versions_create",
        summary="Add a prompt version",
        description=(
            "Saves a new version of the template's body (numbered one past the latest); no label moves, so "
            "nothing serves it until `POST /api/prompts/{name}/labels/{label}/`. Answers 400 when the body "
            "is unchanged or does not parse, 404 for an unknown name.\n\n"
            'Example body: `{"body": "Question: {{ q }}", "note": "clearer wording"}`'
        ),
        parameters=[PROMPT_NAME],
        request=PromptEditSerializer,
        responses={201: PromptVersionSerializer},
    )
    def post(self, request: Request, name: str) -> Response:
        template = get_object_or_404(PromptTemplate, name=name)
        data = PromptEditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = prompt_services.prompt_version_create(
            template=template, user=request.user, **data.validated_data
        )
        return Response(PromptVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class PromptLabelView(ApiView):
    permission_classes = [IsAuthenticated, require("core.label_prompttemplate")]

    @extend_schema(
        summary="Move a prompt label",
        description=(
            "Points a label at a version, optionally splitting its traffic: `split_percent` of the requests "
            "get `split_version` (the same key always gets the same one). Answers 400 for a split without "
            "two different versions, 404 for an unknown template or version number.\n\n"
            'Example body: `{"version": 3, "split_version": 4, "split_percent": 10}`'
        ),
        parameters=[
            PROMPT_NAME,
            OpenApiParameter(
                "label",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                enum=PromptLabel.Name.values,
                description="The label to move.",
            ),
        ],
        request=LabelMoveSerializer,
        responses=PromptLabelSerializer,
    )
    def post(self, request: Request, name: str, label: str) -> Response:
        template = get_object_or_404(PromptTemplate, name=name)
        data = LabelMoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = get_object_or_404(PromptVersion, template=template, number=data.validated_data["version"])
        split_number = data.validated_data.get("split_version")
        split = (
            get_object_or_404(PromptVersion, template=template, number=split_number) if split_number else None
        )
        obj = prompt_services.prompt_label_move(
            template=template,
            label=label,
            version=version,
            split_version=split,
            split_percent=data.validated_data["split_percent"],
            user=request.user,
        )
        return Response(PromptLabelSerializer(obj).data)


class PromptRenderView(ApiView):
    permission_classes = [IsAuthenticated, require("core.view_prompttemplate", "core.view_prompttemplate")]

    @extend_schema(
        summary="Render a prompt",
        description=(
            "Renders a version (by `version` number, or the one `label` points to) with the given variables, "
            "and answers the text; nothing is saved. Answers 400 when a variable is missing or the template "
            "fails, 404 for an unknown template or version.\n\n"
            'Example body: `{"label": "staging", "variables": {"q": "How do I reset my password?"}}`'
        ),
        parameters=[PROMPT_NAME],
        request=RenderSerializer,
        responses=RenderResultSerializer,
    )
    def post(self, request: Request, name: str) -> Response:
        template = get_object_or_404(PromptTemplate, name=name)
        data = RenderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if number := data.validated_data.get("version"):
            version = get_object_or_404(PromptVersion, template=template, number=number)
        else:
            version = selectors.prompt_resolve(template_name=name, label=data.validated_data["label"])
        text = prompt_services.prompt_preview(version=version, variables=data.validated_data["variables"])
        return Response({"version": version.number, "text": text})
