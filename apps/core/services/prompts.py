"""Prompt templates: versions are immutable, labels point at versions, moving a label is a roll-back."""

from __future__ import annotations

import difflib

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Max

from apps.core.errors import ServiceError
from apps.core.models import PromptLabel, PromptLabelEvent, PromptTemplate, PromptVersion
from ml.api import check_template, render
from ml.errors import MLError


def _user(user: User | AnonymousUser | None) -> User | None:
    return user if isinstance(user, User) else None


def _check(body: str) -> None:
    try:
        check_template(body)
    except MLError as exc:
        raise ServiceError(str(exc), field="body") from None


@transaction.atomic
def prompt_template_create(
    *, name: str, body: str, description: str = "", user: User | AnonymousUser | None
) -> PromptTemplate:
    """A new template with version 1, labelled production and staging."""
    _check(body)
    if PromptTemplate.objects.filter(name=name).exists():
        raise ServiceError(f"a template named {name!r} already exists", field="name")
    template = PromptTemplate.objects.create(name=name, description=description)
    version = PromptVersion.objects.create(template=template, number=1, body=body, created_by=_user(user))
    for label in PromptLabel.Name.values:
        PromptLabel.objects.create(template=template, name=label, version=version, updated_by=_user(user))
    return template


@transaction.atomic
def prompt_version_create(
    *, template: PromptTemplate, body: str, note: str = "", user: User | AnonymousUser | None
) -> PromptVersion:
    """Editing a template: a new immutable version. Labels stay where they were until moved."""
    _check(body)
    PromptTemplate.objects.select_for_update().get(pk=template.pk)
    latest = template.versions.aggregate(n=Max("number"))["n"] or 0
    last_body = template.versions.filter(number=latest).values_list("body", flat=True).first()
    if last_body == body:
        raise ServiceError("the body is unchanged from the latest version", field="body")
    return PromptVersion.objects.create(
        template=template, number=latest + 1, body=body, note=note, created_by=_user(user)
    )


@transaction.atomic
def prompt_label_move(
    *,
    template: PromptTemplate,
    label: str,
    version: PromptVersion,
    user: User | AnonymousUser | None,
    split_version: PromptVersion | None = None,
    split_percent: int = 0,
) -> PromptLabel:
    """Point `label` at `version` (optionally sending split_percent% of traffic to split_version)."""
    if label not in PromptLabel.Name.values:
        raise ServiceError(f"unknown label {label!r}; use one of {', '.join(PromptLabel.Name.values)}")
    if version.template_id != template.pk or (split_version and split_version.template_id != template.pk):
        raise ServiceError("the versions must belong to this template")
    if not 0 <= split_percent <= 100:
        raise ServiceError("split_percent must be between 0 and 100", field="split_percent")
    if split_version is None:
        split_percent = 0
    elif split_version.pk == version.pk:
        raise ServiceError("a split needs two different versions", field="split_version")
    obj, _ = PromptLabel.objects.select_for_update().get_or_create(
        template=template, name=label, defaults={"version": version}
    )
    event = PromptLabelEvent(label=obj, from_version=obj.version, to_version=version, by=_user(user))
    obj.version, obj.split_version, obj.split_percent = version, split_version, split_percent
    obj.updated_by = _user(user)
    obj.save(update_fields=["version", "split_version", "split_percent", "updated_by", "updated_at"])
    event.save()
    return obj


def prompt_diff(*, old: PromptVersion, new: PromptVersion) -> list[str]:
    return list(
        difflib.unified_diff(
            old.body.splitlines(),
            new.body.splitlines(),
            fromfile=f"v{old.number}",
            tofile=f"v{new.number}",
            lineterm="",
        )
    )


def prompt_preview(*, version: PromptVersion, variables: dict[str, object]) -> str:
    try:
        return render(version.body, variables)
    except MLError as exc:
        raise ServiceError(str(exc), field="variables") from None
