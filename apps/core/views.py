"""Dashboard pages: parse input, call one service or selector, render."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from apps.core import selectors
from apps.core.access import PUBLIC, SIGNED_IN, access
from apps.core.errors import ServiceError
from apps.core.forms import (
    JobStartForm,
    PromptEditForm,
    PromptLabelForm,
    PromptPreviewForm,
    PromptTemplateForm,
)
from apps.core.health import Check, details_visible_to, overall_status, run_checks
from apps.core.job_registry import get_kind
from apps.core.models import JobStatus, ModelVersion, PromptTemplate, PromptVersion
from apps.core.services import jobs as job_services
from apps.core.services import prompts as prompt_services
from apps.core.services import registry as registry_services


@access(PUBLIC)
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Status for anyone (load balancers, Docker); the checks, with hosts and paths, for staff only."""
    checks = run_checks()
    status = overall_status(checks)
    body: dict[str, object] = {"status": status}
    if details_visible_to(request.user):
        body["checks"] = {c.name: _check_json(c) for c in checks}
    return JsonResponse(body, status=503 if status == "unhealthy" else 200)


@access(PUBLIC)
@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever a page links; the icon is a static file."""
    return redirect(static("favicon.svg"), permanent=True)


def _check_json(check: Check) -> dict[str, object]:
    extra = {} if check.critical else {"critical": False}  # a failure that degrades, not stops, the service
    return {"ok": check.ok, "detail": check.detail, **extra, **check.data}


@access(SIGNED_IN)
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    checks = run_checks()
    context = {
        "running": selectors.jobs_list(user=request.user, status=JobStatus.RUNNING)[:5],
        "recent": selectors.jobs_list(user=request.user)[:5],
        "active_models": ModelVersion.objects.filter(is_active=True),
        "health": overall_status(checks),
        "checks": checks if details_visible_to(request.user) else [],  # hosts and paths: staff only
    }
    return render(request, "core/dashboard.html", context)


# --- jobs ---------------------------------------------------------------------------------------------
@access("core.view_trainingjob", "core.run_trainingjob")
@login_required
@permission_required("core.view_trainingjob", raise_exception=True)
def jobs(request: HttpRequest) -> HttpResponse:
    # ?kind= is the kind chooser's own submit ("Show parameters"), for browsers without JavaScript
    form = JobStartForm(kind=request.GET.get("kind"))
    if request.method == "POST":
        if not request.user.has_perm("core.run_trainingjob"):
            return HttpResponse("You may not start jobs.", status=403)
        form = JobStartForm(request.POST)
        if form.is_valid():
            try:
                job = job_services.job_create(
                    kind=form.cleaned_data["kind"], params=form.params(), user=request.user
                )
            except ServiceError as exc:
                form.add_service_error(exc)
            else:
                messages.success(request, f"Started job #{job.pk}.")
                return redirect("core:job", pk=job.pk)
    status = request.GET.get("status") or None
    context = {
        "jobs": selectors.jobs_list(user=request.user, status=status)[:100],
        "form": form,
        "statuses": JobStatus.choices,
    }
    return render(request, "core/jobs.html", context, status=400 if form.errors else 200)


@access("core.run_trainingjob")
@require_GET
@login_required
@permission_required("core.run_trainingjob", raise_exception=True)
def job_params(request: HttpRequest) -> HttpResponse:
    """The parameter fields of one kind, which the job form swaps in when its kind changes (HTMX)."""
    name = request.GET.get("kind", "")
    if not name:
        return HttpResponse("kind is required", status=400, content_type="text/plain; charset=utf-8")
    try:
        kind = get_kind(name)
    except ServiceError as exc:
        return HttpResponse(exc.message, status=404, content_type="text/plain; charset=utf-8")
    return render(request, "core/_job_params.html", {"form": JobStartForm(kind=kind.name)})


@access("core.view_trainingjob")
@login_required
@permission_required("core.view_trainingjob", raise_exception=True)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = selectors.job_visible_to(request.user, pk)
    return render(request, "core/job_detail.html", {"job": job})


@access("core.view_trainingjob")
@never_cache
@login_required
@permission_required("core.view_trainingjob", raise_exception=True)
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress fragment a job row polls while it runs (HTMX); it stops polling once finished."""
    job = selectors.job_visible_to(request.user, pk)
    return render(request, "core/_job_progress.html", {"job": job})


@access("core.run_trainingjob")
@require_POST
@login_required
@permission_required("core.run_trainingjob", raise_exception=True)
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.jobs_visible_to(request.user), pk=pk)
    try:
        job_services.job_cancel(job=job)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Cancellation of job #{job.pk} requested.")
    return redirect("core:job", pk=job.pk)


@access("core.run_trainingjob")
@require_POST
@login_required
@permission_required("core.run_trainingjob", raise_exception=True)
def job_retry(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(selectors.jobs_visible_to(request.user), pk=pk)
    try:
        again = job_services.job_retry(job=job, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("core:job", pk=job.pk)
    messages.success(request, f"Started job #{again.pk}, a new run of job #{job.pk}.")
    return redirect("core:job", pk=again.pk)


# --- model registry -----------------------------------------------------------------------------------
@access("core.view_modelversion")
@login_required
@permission_required("core.view_modelversion", raise_exception=True)
def models_page(request: HttpRequest) -> HttpResponse:
    context = {
        "tasks": selectors.model_versions_by_task(),
        "rollback_to": selectors.rollback_targets(),
        "history": selectors.promotions()[:20],
    }
    return render(request, "core/models.html", context)


@access("core.promote_modelversion")
@require_POST
@login_required
@permission_required("core.promote_modelversion", raise_exception=True)
def model_promote(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        registry_services.model_version_promote(version=version, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{version} is now active.")
    return redirect("core:models")


@access("core.promote_modelversion")
@require_POST
@login_required
@permission_required("core.promote_modelversion", raise_exception=True)
def model_rollback(request: HttpRequest, task: str) -> HttpResponse:
    try:
        version = registry_services.model_version_rollback(task=task, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Rolled back: {version} is active again.")
    return redirect("core:models")


# --- prompts ------------------------------------------------------------------------------------------
@access("core.view_prompttemplate", "core.add_promptversion")
@login_required
@permission_required("core.view_prompttemplate", raise_exception=True)
def prompts(request: HttpRequest) -> HttpResponse:
    form = PromptTemplateForm()
    if request.method == "POST":
        if not request.user.has_perm("core.add_promptversion"):
            return HttpResponse("You may not create templates.", status=403)
        form = PromptTemplateForm(request.POST)
        if form.is_valid():
            try:
                template = prompt_services.prompt_template_create(user=request.user, **form.cleaned_data)
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                return redirect("core:prompt", name=template.name)
    context = {"templates": selectors.prompt_templates(), "form": form}
    return render(request, "core/prompts.html", context, status=400 if form.errors else 200)


@dataclass
class _Preview:
    """One version's preview area: its variables form, then the text the preview gave or why it could not."""

    version: PromptVersion
    form: PromptPreviewForm
    rendered: str | None = None
    error: str = ""


def _blank_preview(version: PromptVersion) -> _Preview:
    return _Preview(version, PromptPreviewForm(body=version.body, number=version.number))


def _prompt_context(
    template: PromptTemplate, *, preview: _Preview | None = None, **extra: object
) -> dict[str, object]:
    versions = list(template.versions.all())
    previews = [preview if preview and preview.version.pk == v.pk else _blank_preview(v) for v in versions]
    return {
        "template": template,
        "versions": versions,
        "previews": previews,
        "labels": template.labels.select_related("version", "split_version"),
        "edit_form": PromptEditForm(initial={"body": versions[0].body if versions else ""}),
        "label_form": PromptLabelForm(),
        **extra,
    }


@access("core.view_prompttemplate", "core.add_promptversion")
@login_required
@permission_required("core.view_prompttemplate", raise_exception=True)
def prompt_detail(request: HttpRequest, name: str) -> HttpResponse:
    if request.method == "POST" and not request.user.has_perm("core.add_promptversion"):
        return HttpResponse("You may not edit prompts.", status=403)  # before the lookup: nothing leaks
    template = get_object_or_404(PromptTemplate, name=name)
    context = _prompt_context(template)
    if request.method == "POST":
        form = PromptEditForm(request.POST)
        if form.is_valid():
            try:
                version = prompt_services.prompt_version_create(
                    template=template, user=request.user, **form.cleaned_data
                )
            except ServiceError as exc:
                form.add_error("body", exc.message)
            else:
                messages.success(request, f"Saved version {version.number}. Labels were not moved.")
                return redirect("core:prompt", name=template.name)
        context["edit_form"] = form
        return render(request, "core/prompt_detail.html", context, status=400)
    return render(request, "core/prompt_detail.html", context)


@access("core.view_prompttemplate")
@login_required
@permission_required("core.view_prompttemplate", raise_exception=True)
def prompt_diff(request: HttpRequest, name: str) -> HttpResponse:
    template = get_object_or_404(PromptTemplate, name=name)
    try:
        a, b = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
    except ValueError:
        return HttpResponse("Give two version numbers: ?a=1&b=2", status=400)
    old = get_object_or_404(template.versions, number=a)
    new = get_object_or_404(template.versions, number=b)
    lines = prompt_services.prompt_diff(old=old, new=new)
    return render(
        request, "core/prompt_diff.html", {"template": template, "old": old, "new": new, "lines": lines}
    )


@access("core.view_prompttemplate")
@require_POST
@login_required
@permission_required("core.view_prompttemplate", raise_exception=True)
def prompt_preview(request: HttpRequest, name: str, number: int) -> HttpResponse:
    """The version's preview area again, with the text or the error: swapped in place by htmx, or inside the
    whole page for a plain form post. 400 when the variables are wrong or the template cannot render them."""
    template = get_object_or_404(PromptTemplate, name=name)
    version = get_object_or_404(template.versions, number=number)
    preview = _Preview(version, PromptPreviewForm(request.POST, body=version.body, number=version.number))
    if preview.form.is_valid():
        try:
            preview.rendered = prompt_services.prompt_preview(
                version=version, variables=preview.form.variables()
            )
        except ServiceError as exc:
            preview.error = exc.message
    status = 400 if preview.error or preview.form.errors else 200
    if getattr(request, "htmx", False):
        fragment = {"template": template, "preview": preview}
        return render(request, "core/_prompt_preview.html", fragment, status=status)
    context = _prompt_context(template, preview=preview)
    return render(request, "core/prompt_detail.html", context, status=status)


@access("core.label_prompttemplate")
@require_POST
@login_required
@permission_required("core.label_prompttemplate", raise_exception=True)
def prompt_label(request: HttpRequest, name: str) -> HttpResponse:
    template = get_object_or_404(PromptTemplate, name=name)
    form = PromptLabelForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "; ".join(f"{k}: {', '.join(str(e) for e in v)}" for k, v in form.errors.items())
        )
        return redirect("core:prompt", name=name)
    data = form.cleaned_data
    version = get_object_or_404(template.versions, number=data["version"])
    split = (
        get_object_or_404(template.versions, number=data["split_version"])
        if data.get("split_version")
        else None
    )
    try:
        prompt_services.prompt_label_move(
            template=template,
            label=data["label"],
            version=version,
            split_version=split,
            split_percent=data.get("split_percent") or 0,
            user=request.user,
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{data['label']} now points at version {version.number}.")
    return redirect("core:prompt", name=name)
