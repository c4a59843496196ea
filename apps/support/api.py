"""HTTP API of the support knowledge bases (token or session auth), mounted at /api/support/.

    GET  /api/support/knowledge-bases/                                  the knowledge bases (a page)
    POST /api/support/knowledge-bases/                                  create one: {"name", "slug", "description"}
    GET  /api/support/knowledge-bases/<slug>/documents/?status=&visibility=   its documents (a page)
    POST /api/support/knowledge-bases/<slug>/documents/                 add text {"title", "text", "format"} or a URL {"url"}
    POST /api/support/knowledge-bases/<slug>/documents/upload/          add a file (multipart: file, title, format, ...)
    GET|DELETE /api/support/knowledge-bases/<slug>/documents/<id>/
    GET|PUT|DELETE /api/support/knowledge-bases/<slug>/documents/by-external-id/<external id>/

Writes are idempotent by external id: the same content again changes nothing (`"outcome": "unchanged"`),
changed content replaces the served version once its ingestion job has built the new one. The views parse,
call one service or selector, and serialize; the services validate (apps/support/services/).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api import require
from apps.core.api_filters import ApiView, Pagination
from apps.core.api_schema import ErrorSerializer
from apps.core.errors import ServiceError
from apps.core.parsers import JSONParser
from apps.support import selectors
from apps.support.extraction import FORMATS
from apps.support.models import Document, KnowledgeBase
from apps.support.services import documents as document_services
from apps.support.services import knowledge
from apps.support.services.documents import DocumentChange

VIEW_KB, ADD_KB = "support.view_knowledgebase", "support.add_knowledgebase"
VIEW_DOC, ADD_DOC, CHANGE_DOC = "support.view_document", "support.add_document", "support.change_document"
DELETE_DOC = "support.delete_document"
_MB = document_services.UPLOAD_MAX_BYTES // (1024 * 1024)


# --- serializers --------------------------------------------------------------------------------------
class KnowledgeBaseSerializer(serializers.ModelSerializer):
    documents_total = serializers.IntegerField(read_only=True, default=0, help_text="How many documents.")
    documents_ready = serializers.IntegerField(
        read_only=True, default=0, help_text="How many of them are indexed and served."
    )

    class Meta:
        model = KnowledgeBase
        fields = ["id", "name", "slug", "description", "index_version", "documents_total", "documents_ready",
                  "created_at", "updated_at"]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {"index_version": {"help_text": "The index version served now; empty before any."}}


class KnowledgeBaseWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=knowledge.NAME_MAX)
    slug = serializers.CharField(
        max_length=50, required=False, allow_blank=True, default="", help_text="Default: from the name."
    )
    description = serializers.CharField(
        max_length=knowledge.DESCRIPTION_MAX, required=False, allow_blank=True, default=""
    )


class DocumentSerializer(serializers.ModelSerializer):
    kb = serializers.CharField(source="kb.slug", read_only=True, help_text="The knowledge base's slug.")
    chunk_count = serializers.IntegerField(read_only=True, default=0, help_text="Passages served.")
    answer_count = serializers.IntegerField(read_only=True, default=0, help_text="Curated answers served.")
    # A plain string, not format "uri": documents that were not read from a URL have an empty one.
    url = serializers.CharField(
        read_only=True, help_text="The page it is read from; empty for other sources."
    )

    class Meta:
        model = Document
        fields = ["id", "kb", "external_id", "title", "source", "format", "visibility", "status", "error",
                  "version", "content_hash", "chunk_count", "answer_count", "url", "sync_minutes",
                  "next_sync_at", "last_synced_at", "indexed_at", "created_at", "updated_at"]  # fmt: skip
        read_only_fields = fields
        extra_kwargs = {
            "error": {"help_text": "Why the last ingestion or fetch failed; empty otherwise."},
            "version": {"help_text": "How many versions were served so far; 0 before the first."},
            "content_hash": {"help_text": "The served version's hash (content, format, title, visibility)."},
        }


class DocumentChangeSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=("created", "replaced", "unchanged", "deleted"),
        help_text="What the write did: `unchanged` when this exact content is already served or queued.",
    )
    job_id = serializers.IntegerField(
        allow_null=True, help_text="The `support_ingest` job that indexes it (see /api/jobs/); null if none."
    )
    document = DocumentSerializer()


class DocumentWriteSerializer(serializers.Serializer):
    """A document as text (`text`, `format`) or as a URL to fetch (`url`, `sync_minutes`): exactly one."""

    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
    text = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False,
        max_length=document_services.PASTE_MAX_CHARS,
    )  # fmt: skip
    format = serializers.ChoiceField(
        choices=[f for f in FORMATS if f != "pdf"], default="text", help_text="How to read `text`."
    )
    url = serializers.URLField(required=False, allow_blank=True, default="", max_length=2000)
    sync_minutes = serializers.IntegerField(
        min_value=0, max_value=document_services.SYNC_MINUTES_MAX, default=0,
        help_text="Re-fetch a URL every this many minutes (15 or more; 0: never).",
    )  # fmt: skip
    visibility = serializers.ChoiceField(choices=Document.Visibility.choices, default="public")
    external_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=document_services.EXTERNAL_ID_MAX,
        help_text="Your id for it: writing the same id again replaces it (default for a URL: the URL).",
    )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs["text"].strip()) == bool(attrs["url"]):
            raise ServiceError("send either `text` or `url`, not both and not neither", field="text")
        return attrs


@extend_schema_field(OpenApiTypes.BINARY)
class UploadedFileField(serializers.FileField):
    """A file field documented as the file's bytes in a multipart part."""


class DocumentUploadSerializer(serializers.Serializer):
    file = UploadedFileField(
        help_text=f"Markdown, HTML, text, PDF or a question,answer CSV; at most {_MB} MB."
    )
    title = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Default: the file name."
    )
    format = serializers.ChoiceField(
        choices=FORMATS, required=False, default="", help_text="Default: from the file name."
    )
    visibility = serializers.ChoiceField(choices=Document.Visibility.choices, default="public")
    external_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=document_services.EXTERNAL_ID_MAX,
        help_text="Default: the file name, so uploading a file of the same name replaces it.",
    )  # fmt: skip


# --- helpers ------------------------------------------------------------------------------------------
SLUG_PATH = OpenApiParameter(
    "slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The knowledge base's slug."
)
ID_PATH = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The document's id.")
EXTERNAL_PATH = OpenApiParameter(
    "external_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Your id of the document."
)
_CHANGE_STATUS = {"created": status.HTTP_201_CREATED}
_INGESTION = (
    "Ingestion runs as a `support_ingest` job: extract, sanitise (no script survives), chunk, embed, "
    "index; until it finishes, the previous version (if any) is served, and a failure leaves it served "
    "with the reason in the document's `error`."
)


def _kb_or_404(slug: str) -> KnowledgeBase:
    kb = selectors.kb_by_slug(slug)
    if kb is None:
        raise NotFound(f"no knowledge base {slug!r}")
    return kb


def _change_response(change: DocumentChange) -> Response:
    document = selectors.document_by_id(kb=change.document.kb, pk=change.document.pk) or change.document
    payload = {
        "outcome": change.outcome,
        "job_id": change.job_id,
        "document": DocumentSerializer(document).data,
    }
    return Response(payload, status=_CHANGE_STATUS.get(change.outcome, status.HTTP_200_OK))


def _write(kb: KnowledgeBase, data: dict[str, Any], *, external_id: str = "") -> DocumentChange:
    external_id = external_id or data["external_id"]
    if data["url"]:
        return document_services.document_add_url(
            kb=kb, url=data["url"], title=data["title"], visibility=data["visibility"],
            sync_minutes=data["sync_minutes"], external_id=external_id,
        )  # fmt: skip
    return document_services.document_paste(
        kb=kb, title=data["title"], text=data["text"], fmt=data["format"], visibility=data["visibility"],
        external_id=external_id, source=Document.Source.API,
    )  # fmt: skip


# --- views --------------------------------------------------------------------------------------------
class KnowledgeBaseListView(ApiView):
    permission_classes = [IsAuthenticated, require(VIEW_KB, ADD_KB)]
    pagination_class = Pagination

    @extend_schema(
        summary="List the knowledge bases",
        description="Every knowledge base by name, with its served index version and document counts.",
        responses=KnowledgeBaseSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        rows = selectors.knowledge_bases()
        return self.paginate(rows, lambda page: KnowledgeBaseSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a knowledge base",
        description=(
            "Creates an empty knowledge base with its own search index (written by the first document). "
            "The slug (default: from the name) names it in URLs and never changes. Answers 400 for a slug "
            'in use or malformed.\n\nExample body: `{"name": "Billing help", "slug": "billing"}`'
        ),
        request=KnowledgeBaseWriteSerializer,
        responses={201: KnowledgeBaseSerializer},
    )
    def post(self, request: Request) -> Response:
        data = KnowledgeBaseWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        kb = knowledge.kb_create(**data.validated_data)
        return Response(KnowledgeBaseSerializer(kb).data, status=status.HTTP_201_CREATED)


class DocumentListView(ApiView):
    permission_classes = [IsAuthenticated, require(VIEW_DOC, ADD_DOC)]
    pagination_class = Pagination
    parser_classes = [JSONParser]

    @extend_schema(
        summary="List a knowledge base's documents",
        description=(
            "The documents of one knowledge base by title, each with its status (pending, indexing, ready, "
            "failed, deleting), error, version and passage counts. Answers 404 for an unknown slug."
        ),
        parameters=[
            SLUG_PATH,
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                enum=Document.Status.values,
                description="Only those in this status.",
            ),
            OpenApiParameter(
                "visibility",
                OpenApiTypes.STR,
                enum=Document.Visibility.values,
                description="Only public (customer-facing) or internal (staff-only) documents.",
            ),
        ],
        responses={200: DocumentSerializer(many=True), 404: ErrorSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        kb, query = _kb_or_404(slug), request.query_params
        for name, allowed in (("status", Document.Status.values), ("visibility", Document.Visibility.values)):
            if query.get(name) and query[name] not in allowed:
                raise ServiceError(f"{name} must be one of {', '.join(allowed)}", field=name)
        rows = selectors.documents(kb=kb, status=query.get("status"), visibility=query.get("visibility"))
        return self.paginate(rows, lambda page: DocumentSerializer(page, many=True).data)

    @extend_schema(
        summary="Add a document from text or a URL",
        description=(
            "Adds a document from `text` (Markdown, HTML, plain text, or a question,answer CSV) or from a "
            "`url` fetched by the server (public addresses only; a sitemap adds each of its pages; "
            "`sync_minutes` re-fetches it with conditional GET). With an `external_id` already in the "
            f"knowledge base, replaces that document; the same content again is `unchanged`. {_INGESTION}"
        ),
        parameters=[SLUG_PATH],
        request=DocumentWriteSerializer,
        responses={200: DocumentChangeSerializer, 201: DocumentChangeSerializer, 404: ErrorSerializer},
        examples=[
            OpenApiExample(
                "Pasted Markdown",
                value={
                    "title": "Refunds",
                    "text": "# Refunds\nWithin 30 days.",
                    "format": "markdown",
                    "external_id": "faq-refunds",
                },
                request_only=True,
            ),
            OpenApiExample(
                "A page, re-read hourly",
                value={"url": "https://help.example.com/refunds", "sync_minutes": 60},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        kb = _kb_or_404(slug)
        data = DocumentWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _change_response(_write(kb, data.validated_data))


class DocumentUploadView(ApiView):
    permission_classes = [IsAuthenticated, require(ADD_DOC)]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Upload a document file",
        description=(
            f"Adds a file (at most {_MB} MB): Markdown, HTML, plain text, PDF (not password-protected) or "
            "a CSV whose header has `question` and `answer` columns (curated answers). The format comes "
            "from the file name unless `format` says it. The external id defaults to the file name, so "
            f"uploading a file of the same name again replaces it, and the same file is `unchanged`. {_INGESTION}"
        ),
        parameters=[SLUG_PATH],
        request={"multipart/form-data": DocumentUploadSerializer},
        responses={200: DocumentChangeSerializer, 201: DocumentChangeSerializer, 404: ErrorSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        kb = _kb_or_404(slug)
        data = DocumentUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        change = document_services.document_upload(
            kb=kb, file=v["file"], filename=v["file"].name or "upload", content_type=v["file"].content_type or "",
            title=v["title"], fmt=v["format"], visibility=v["visibility"], external_id=v["external_id"],
        )  # fmt: skip
        return _change_response(change)


class DocumentDetailView(ApiView):
    permission_classes = [IsAuthenticated, require(VIEW_DOC, DELETE_DOC)]

    def _document(self, slug: str, pk: int) -> Document:
        document = selectors.document_by_id(kb=_kb_or_404(slug), pk=pk)
        if document is None:
            raise NotFound(f"no document {pk} in knowledge base {slug!r}")
        return document

    @extend_schema(
        summary="A document",
        description="One document of a knowledge base with its status, error, version and passage counts.",
        parameters=[SLUG_PATH, ID_PATH],
        responses={200: DocumentSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, slug: str, pk: int) -> Response:
        return Response(DocumentSerializer(self._document(slug, pk)).data)

    @extend_schema(
        summary="Delete a document",
        description=(
            "Deletes a document: at once when nothing of it is served, else by a `support_ingest` job that "
            "takes its passages out of the index first (the document shows `deleting` until then)."
        ),
        parameters=[SLUG_PATH, ID_PATH],
        responses={200: DocumentChangeSerializer, 404: ErrorSerializer},
    )
    def delete(self, request: Request, slug: str, pk: int) -> Response:
        change = document_services.document_delete(document=self._document(slug, pk))
        return _deleted_response(change)


def _deleted_response(change: DocumentChange) -> Response:
    still = selectors.document_by_id(kb=change.document.kb, pk=change.document.pk) or change.document
    payload = {"outcome": change.outcome, "job_id": change.job_id, "document": DocumentSerializer(still).data}
    return Response(payload)


class DocumentByExternalIdView(ApiView):
    permission_classes = [IsAuthenticated, require(VIEW_DOC, CHANGE_DOC)]
    parser_classes = [JSONParser]

    def _document(self, slug: str, external_id: str) -> Document:
        document = selectors.document_by_external_id(kb=_kb_or_404(slug), external_id=external_id)
        if document is None:
            raise NotFound(f"no document with external id {external_id!r} in knowledge base {slug!r}")
        return document

    @extend_schema(
        summary="A document, by your id",
        description="The document that has this external id in the knowledge base (404 when none has).",
        parameters=[SLUG_PATH, EXTERNAL_PATH],
        responses={200: DocumentSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, slug: str, external_id: str) -> Response:
        return Response(DocumentSerializer(self._document(slug, external_id)).data)

    @extend_schema(
        summary="Create or replace a document by your id",
        description=(
            "Makes the document with this external id hold the text or URL sent (created when new: 201). "
            "Idempotent: sending the same content again changes nothing and queues nothing (`unchanged`); "
            f"changed content replaces the served version. {_INGESTION}"
        ),
        parameters=[SLUG_PATH, EXTERNAL_PATH],
        request=DocumentWriteSerializer,
        responses={200: DocumentChangeSerializer, 201: DocumentChangeSerializer, 404: ErrorSerializer},
    )
    def put(self, request: Request, slug: str, external_id: str) -> Response:
        kb = _kb_or_404(slug)
        data = DocumentWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _change_response(_write(kb, data.validated_data, external_id=external_id))

    @extend_schema(
        summary="Delete a document by your id",
        description=(
            "Deletes the document with this external id: at once when nothing of it is served, else by a "
            "job that takes its passages out of the index first."
        ),
        parameters=[SLUG_PATH, EXTERNAL_PATH],
        responses={200: DocumentChangeSerializer, 404: ErrorSerializer},
    )
    def delete(self, request: Request, slug: str, external_id: str) -> Response:
        change = document_services.document_delete(document=self._document(slug, external_id))
        return _deleted_response(change)
