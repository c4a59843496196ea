"""Support knowledge: knowledge bases, their documents, the chunks indexed for retrieval, curated answers.

Each knowledge base has one named, versioned hybrid index in the model store (`index_name`); the version it
serves is `index_version`, changed in the same transaction that swaps a document's chunks, so a reader sees
the old version with the old chunks or the new with the new.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class KnowledgeBase(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True, default="")
    index_name = models.CharField(max_length=64, unique=True)
    index_version = models.CharField(max_length=32, blank=True, default="")  # served; "" before the first
    # The ingestion that may write the index now (a lease: ingestions of one KB take turns).
    lock_holder = models.CharField(max_length=64, blank=True, default="")
    lock_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "knowledge base"

    def __str__(self) -> str:
        return self.name


class Document(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        URL = "url", "URL"
        API = "api", "API"
        PASTE = "paste", "Pasted text"

    class Format(models.TextChoices):
        MARKDOWN = "markdown", "Markdown"
        HTML = "html", "HTML"
        TEXT = "text", "Plain text"
        PDF = "pdf", "PDF"
        CSV_QA = "csv_qa", "CSV of questions and answers"
        SITEMAP = "sitemap", "Sitemap (its pages become documents)"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public (customers)"
        INTERNAL = "internal", "Internal (staff only)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        INDEXING = "indexing", "Indexing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        DELETING = "deleting", "Deleting"

    kb = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    external_id = models.CharField(max_length=200, blank=True, default="")
    title = models.CharField(max_length=300)
    source = models.CharField(max_length=16, choices=Source.choices)
    format = models.CharField(max_length=16, choices=Format.choices)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    content_hash = models.CharField(max_length=64, blank=True, default="")  # sha256 of the served content
    text = models.TextField(blank=True, default="")  # extracted and sanitised, of the served version
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    version = models.PositiveIntegerField(default=0)  # served versions so far; 0: nothing served yet
    # What waits to be indexed: the raw bytes and their hash (cleared once served).
    pending_content = models.BinaryField(blank=True, default=b"")
    pending_hash = models.CharField(max_length=64, blank=True, default="")
    # URL documents: conditional GET and the re-sync schedule (sync_minutes 0: never re-synced).
    url = models.URLField(max_length=2000, blank=True, default="")
    etag = models.CharField(max_length=300, blank=True, default="")
    last_modified = models.CharField(max_length=100, blank=True, default="")
    sync_minutes = models.PositiveIntegerField(default=0)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kb", "external_id"], condition=~Q(external_id=""), name="document_unique_external_id"
            )
        ]
        indexes = [models.Index(fields=["next_sync_at"])]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    """A passage of a served document version, indexed under `index_id`."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    index_id = models.CharField(max_length=80, unique=True)  # chunk-<document>-v<version>-<position>
    position = models.PositiveIntegerField()
    heading = models.CharField(max_length=1000, blank=True, default="")  # "Billing > Refunds"
    text = models.TextField()
    token_count = models.PositiveIntegerField()

    class Meta:
        ordering = ["document", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="chunk_unique_position")]

    def __str__(self) -> str:
        return self.index_id


class CuratedAnswer(models.Model):
    """A question with its approved answer, from a CSV document; indexed as a passage of kind "qa"."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="curated_answers")
    index_id = models.CharField(max_length=80, unique=True)  # qa-<document>-v<version>-<position>
    position = models.PositiveIntegerField()
    question = models.TextField()
    answer = models.TextField()

    class Meta:
        ordering = ["document", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="qa_unique_position")]

    def __str__(self) -> str:
        return self.question[:80]
