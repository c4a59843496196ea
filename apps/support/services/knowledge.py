"""Knowledge bases: create and update. Each has one named index in the model store, named at creation."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from apps.core.errors import ServiceError
from apps.support.models import KnowledgeBase
from apps.support.sanitising import plain_text

NAME_MAX = 200
DESCRIPTION_MAX = 5000
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,49}")


def _clean_name(name: str) -> str:
    cleaned = plain_text(name or "")
    if not cleaned:
        raise ServiceError("a knowledge base needs a name", field="name")
    if len(cleaned) > NAME_MAX:
        raise ServiceError(f"a name is at most {NAME_MAX} characters", field="name")
    return cleaned


def _clean_description(description: str) -> str:
    cleaned = plain_text(description or "")
    if len(cleaned) > DESCRIPTION_MAX:
        raise ServiceError(f"a description is at most {DESCRIPTION_MAX} characters", field="description")
    return cleaned


def _clean_slug(slug: str, name: str) -> str:
    value = (slug or slugify(name))[:50].strip("-")
    if not _SLUG.fullmatch(value):
        raise ServiceError(
            "a slug is 1-50 lower-case letters, digits and hyphens, starting with a letter or digit",
            field="slug",
        )
    return value


def kb_create(*, name: str, slug: str = "", description: str = "") -> KnowledgeBase:
    """A new, empty knowledge base; its index is written by the first document's ingestion."""
    clean_name = _clean_name(name)
    clean_slug = _clean_slug(slug, clean_name)
    if KnowledgeBase.objects.filter(slug=clean_slug).exists():
        raise ServiceError(f"a knowledge base with the slug {clean_slug!r} already exists", field="slug")
    try:
        with transaction.atomic():
            return KnowledgeBase.objects.create(
                name=clean_name,
                slug=clean_slug,
                description=_clean_description(description),
                index_name=f"support-{clean_slug}",
            )
    except IntegrityError:  # created meanwhile by a concurrent request
        raise ServiceError(
            f"a knowledge base with the slug {clean_slug!r} already exists", field="slug"
        ) from None


def kb_update(*, kb: KnowledgeBase, name: str | None = None, description: str | None = None) -> KnowledgeBase:
    """Rename or re-describe a knowledge base (its slug and index stay)."""
    if name is not None:
        kb.name = _clean_name(name)
    if description is not None:
        kb.description = _clean_description(description)
    kb.save(update_fields=["name", "description", "updated_at"])
    return kb
