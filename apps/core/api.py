"""HTTP API of the core app (token auth): jobs, model registry, prompts."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import selectors
from apps.core.access import Access
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


# --- jobs ---------------------------------------------------------------------------------------------
class JobListView(APIView):
    permission_classes = [IsAuthenticated, require("core.view_trainingjob", "core.run_trainingjob")]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=JobStatus.values),
            OpenApiParameter("kind", OpenApiTypes.STR),
        ],
        responses=JobSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        qs = selectors.jobs_list(
            user=request.user,
            status=request.query_params.get("status"),
            kind=request.query_params.get("kind"),
        )
        return Response(
            JobSerializer([selectors.job_as_seen_by(request.user, j) for j in qs[:200]], many=True).data
        )

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def post(self, request: Request) -> Response:
        data = JobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = job_services.job_create(user=request.user, **data.validated_data)
        return Response(
            JobSerializer(selectors.job_as_seen_by(request.user, job)).data, status=status.HTTP_201_CREATED
        )


class JobDetailView(APIView):
    permission_classes = [IsAuthenticated, require("core.view_trainingjob")]

    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobSerializer(selectors.job_visible_to(request.user, pk)).data)


class JobCancelView(APIView):
    permission_classes = [IsAuthenticated, require("core.run_trainingjob")]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job = job_services.job_cancel(job=get_object_or_404(selectors.jobs_visible_to(request.user), pk=pk))
        return Response(JobSerializer(selectors.job_as_seen_by(request.user, job)).data)


class JobRetryView(APIView):
    """Run a failed or cancelled job again: a new job of its kind and parameters."""

    permission_classes = [IsAuthenticated, require("core.run_trainingjob")]

    @extend_schema(request=None, responses={201: JobSerializer})
    def post(self, request: Request, pk: int) -> Response:
        job = get_object_or_404(selectors.jobs_visible_to(request.user), pk=pk)
        again = job_services.job_retry(job=job, user=request.user)
        return Response(
            JobSerializer(selectors.job_as_seen_by(request.user, again)).data, status=status.HTTP_201_CREATED
        )


# --- model registry -----------------------------------------------------------------------------------
class ModelListView(APIView):
    permission_classes = [IsAuthenticated, require("core.view_modelversion")]

    @extend_schema(
        parameters=[OpenApiParameter("task", OpenApiTypes.STR)], responses=ModelVersionSerializer(many=True)
    )
    def get(self, request: Request) -> Response:
        qs = ModelVersion.objects.select_related("promoted_by")
        if task := request.query_params.get("task"):
            qs = qs.filter(task=task)
        return Response(shown_to(request.user, ModelVersionSerializer(qs, many=True).data))


class ModelPromoteView(APIView):
    permission_classes = [IsAuthenticated, require("core.promote_modelversion")]

    @extend_schema(request=None, responses=ModelVersionSerializer)
    def post(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(ModelVersion, pk=pk)
        version = registry_services.model_version_promote(version=version, user=request.user)
        return Response(shown_to(request.user, ModelVersionSerializer(version).data))


class ModelRollbackView(APIView):
    permission_classes = [IsAuthenticated, require("core.promote_modelversion")]

    @extend_schema(request=RollbackSerializer, responses=ModelVersionSerializer)
    def post(self, request: Request) -> Response:
        data = RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = registry_services.model_version_rollback(
            task=data.validated_data["task"], user=request.user
        )
        return Response(shown_to(request.user, ModelVersionSerializer(version).data))


# --- prompts ------------------------------------------------------------------------------------------
class PromptListView(APIView):
    permission_classes = [IsAuthenticated, require("core.view_prompttemplate", "core.add_promptversion")]

    @extend_schema(responses=PromptTemplateSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(PromptTemplateSerializer(selectors.prompt_templates(), many=True).data)

    @extend_schema(request=PromptCreateSerializer, responses={201: PromptTemplateSerializer})
    def post(self, request: Request) -> Response:
        data = PromptCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = prompt_services.prompt_template_create(user=request.user, **data.validated_data)
        return Response(PromptTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class PromptDetailView(APIView):
    permission_classes = [IsAuthenticated, require("core.view_prompttemplate", "core.add_promptversion")]

    @extend_schema(operation_id="prompts_retrieve", responses=PromptDetailSerializer)
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


class PromptLabelView(APIView):
    permission_classes = [IsAuthenticated, require("core.label_prompttemplate")]

    @extend_schema(
        parameters=[
            OpenApiParameter("label", OpenApiTypes.STR, OpenApiParameter.PATH, enum=PromptLabel.Name.values)
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


class PromptRenderView(APIView):
    permission_classes = [IsAuthenticated, require("core.view_prompttemplate", "core.view_prompttemplate")]

    @extend_schema(request=RenderSerializer, responses=RenderResultSerializer)
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
