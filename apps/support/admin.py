from django.contrib import admin

from apps.support.models import Chunk, CuratedAnswer, Document, KnowledgeBase


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "index_name", "index_version", "updated_at"]
    search_fields = ["name", "slug"]
    readonly_fields = [
        "index_name",
        "index_version",
        "lock_holder",
        "lock_expires_at",
        "created_at",
        "updated_at",
    ]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "kb", "source", "format", "visibility", "status", "version", "indexed_at"]
    list_filter = ["kb", "status", "visibility", "source", "format"]
    search_fields = ["title", "external_id", "url"]
    # Content changes go through the dashboard or the API, which re-index; the admin only looks.
    readonly_fields = ["content_hash", "pending_hash", "text", "version", "status", "error", "etag",
                       "last_modified", "last_synced_at", "indexed_at", "created_at", "updated_at"]  # fmt: skip
    exclude = ["pending_content"]


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["index_id", "document", "position", "heading", "token_count"]
    list_select_related = ["document"]
    search_fields = ["index_id", "heading", "text"]
    readonly_fields = ["document", "index_id", "position", "heading", "text", "token_count"]


@admin.register(CuratedAnswer)
class CuratedAnswerAdmin(admin.ModelAdmin):
    list_display = ["question", "document", "position"]
    list_select_related = ["document"]
    search_fields = ["question", "answer"]
    readonly_fields = ["document", "index_id", "position", "question", "answer"]
