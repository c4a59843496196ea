"""Roles are Django groups with real permissions; pages and API endpoints check permissions, not names."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ADMIN, AGENT, ANALYST = "admin", "agent", "analyst"
ROLES = (ADMIN, AGENT, ANALYST)

# app_label.codename; "app_label.*" means every permission of that app.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    ADMIN: ("core.*", "auth.*", "authtoken.*", "support.*", "sentiment.*", "recommender.*"),
    AGENT: (
        "core.view_prompttemplate",
        "core.add_promptversion",
        "core.view_promptversion",
        "support.*",
    ),
    ANALYST: (
        "core.view_trainingjob",
        "core.add_trainingjob",
        "core.run_trainingjob",
        "core.view_modelversion",
        "core.view_prompttemplate",
        "core.view_promptversion",
        "sentiment.*",
        "recommender.*",
    ),
}


def _permissions_for(specs: tuple[str, ...]) -> list[Permission]:
    perms: list[Permission] = []
    for spec in specs:
        app_label, _, codename = spec.partition(".")
        qs = Permission.objects.filter(content_type__app_label=app_label)
        if codename != "*":
            qs = qs.filter(codename=codename)
        perms.extend(qs)
    return perms


def ensure_roles() -> None:
    """Create the three groups and set their permissions to exactly ROLE_PERMISSIONS (idempotent)."""
    for role, specs in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions_for(specs))


def has_role(user: object, *roles: str) -> bool:
    """True for superusers and members of any of `roles` (for pages of apps that have no models yet)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(user.groups.filter(name__in=roles).exists())  # type: ignore[attr-defined]
