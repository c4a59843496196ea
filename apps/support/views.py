"""Support dashboard: knowledge bases, and each one's documents with forms to add and delete them.

Views parse input, call one service or selector, and render. Pages need the app's permissions, which the
agent and admin roles hold (analysts get 403).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.access import access
from apps.core.errors import ServiceError
from apps.support import selectors
from apps.support.forms import KnowledgeBaseForm, PasteForm, UploadForm, UrlForm
from apps.support.models import KnowledgeBase
from apps.support.services import documents as document_services
from apps.support.services import knowledge
from apps.support.services.documents import DocumentChange

VIEW_KB, ADD_KB = "support.view_knowledgebase", "support.add_knowledgebase"
VIEW_DOC, ADD_DOC, DELETE_DOC = "support.view_document", "support.add_document", "support.delete_document"
OUTCOME_WORDS = {
    "created": "Added {title}: it is being indexed.",
    "replaced": "Replacing {title}: the new version is being indexed; the old one is served until then.",
    "unchanged": "{title} already holds exactly this content: nothing to do.",
    "deleted": "Deleting {title}.",
}


def _kb_or_404(slug: str) -> KnowledgeBase:
    kb = selectors.kb_by_slug(slug)
    if kb is None:
        raise Http404("no such knowledge base")
    return kb


def _service_error(form: forms.Form, exc: ServiceError, default: str) -> None:
    form.add_error(exc.field if exc.field in form.fields else default, exc.message)


# --- knowledge bases ----------------------------------------------------------------------------------
def _index_page(request: HttpRequest, form: KnowledgeBaseForm | None = None) -> HttpResponse:
    context = {"kbs": selectors.knowledge_bases(), "form": form or KnowledgeBaseForm()}
    return render(request, "support/index.html", context, status=400 if form and form.errors else 200)


@access(VIEW_KB)
@login_required
@permission_required(VIEW_KB, raise_exception=True)
def index(request: HttpRequest) -> HttpResponse:
    return _index_page(request)


@access(ADD_KB)
@require_POST
@login_required
@permission_required(ADD_KB, raise_exception=True)
def kb_create(request: HttpRequest) -> HttpResponse:
    form = KnowledgeBaseForm(request.POST)
    if form.is_valid():
        try:
            kb = knowledge.kb_create(**form.cleaned_data)
        except ServiceError as exc:
            _service_error(form, exc, "name")
        else:
            messages.success(request, f"Created the knowledge base {kb.name}.")
            return redirect("support:kb", slug=kb.slug)
    return _index_page(request, form)


# --- one knowledge base and its documents --------------------------------------------------------------
def _kb_page(request: HttpRequest, kb: KnowledgeBase, **forms_given: forms.Form) -> HttpResponse:
    page_forms: dict[str, forms.Form] = {
        "upload_form": UploadForm(prefix="upload"),
        "paste_form": PasteForm(prefix="paste"),
        "url_form": UrlForm(prefix="url"),
        **forms_given,
    }
    context: dict[str, Any] = {
        "kb": kb,
        "documents": selectors.documents(kb=kb),
        **page_forms,
    }
    failed = any(form.errors for form in forms_given.values())
    return render(request, "support/kb.html", context, status=400 if failed else 200)


@access(VIEW_DOC)
@login_required
@permission_required(VIEW_DOC, raise_exception=True)
def kb_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _kb_page(request, _kb_or_404(slug))


def _add(
    request: HttpRequest,
    slug: str,
    form: forms.Form,
    name: str,
    write: Callable[[KnowledgeBase, dict], DocumentChange],
) -> HttpResponse:
    kb = _kb_or_404(slug)
    if form.is_valid():
        try:
            change = write(kb, form.cleaned_data)
        except ServiceError as exc:
            _service_error(form, exc, next(iter(form.fields)))
        else:
            messages.success(request, OUTCOME_WORDS[change.outcome].format(title=change.document.title))
            return redirect("support:kb", slug=kb.slug)
    return _kb_page(request, kb, **{name: form})


@access(ADD_DOC)
@require_POST
@login_required
@permission_required(ADD_DOC, raise_exception=True)
def document_upload(request: HttpRequest, slug: str) -> HttpResponse:
    def write(kb: KnowledgeBase, data: dict) -> DocumentChange:
        upload = data["file"]
        return document_services.document_upload(
            kb=kb, file=upload, filename=upload.name or "upload", content_type=upload.content_type or "",
            title=data["title"], fmt=data["format"], visibility=data["visibility"],
        )  # fmt: skip

    return _add(request, slug, UploadForm(request.POST, request.FILES, prefix="upload"), "upload_form", write)


@access(ADD_DOC)
@require_POST
@login_required
@permission_required(ADD_DOC, raise_exception=True)
def document_paste(request: HttpRequest, slug: str) -> HttpResponse:
    def write(kb: KnowledgeBase, data: dict) -> DocumentChange:
        return document_services.document_paste(
            kb=kb, title=data["title"], text=data["text"], fmt=data["format"], visibility=data["visibility"]
        )

    return _add(request, slug, PasteForm(request.POST, prefix="paste"), "paste_form", write)


@access(ADD_DOC)
@require_POST
@login_required
@permission_required(ADD_DOC, raise_exception=True)
def document_url(request: HttpRequest, slug: str) -> HttpResponse:
    def write(kb: KnowledgeBase, data: dict) -> DocumentChange:
        return document_services.document_add_url(
            kb=kb, url=data["url"], title=data["title"], visibility=data["visibility"],
            sync_minutes=data["sync_minutes"],
        )  # fmt: skip

    return _add(request, slug, UrlForm(request.POST, prefix="url"), "url_form", write)


@access(DELETE_DOC)
@require_POST
@login_required
@permission_required(DELETE_DOC, raise_exception=True)
def document_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    document = selectors.document_by_id(kb=_kb_or_404(slug), pk=pk)
    if document is None:
        raise Http404("no such document")
    change = document_services.document_delete(document=document)
    messages.success(request, OUTCOME_WORDS[change.outcome].format(title=document.title))
    return redirect("support:kb", slug=slug)
