"""Roles are Django groups with real permissions; pages and API endpoints check permissions, not names.

Which permissions a role holds is declared by the apps (`ContextaApp.role_permissions`); this module only
knows the role names and turns the declarations into groups. It imports no models at module level, so app
declarations can name the roles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.models import Permission

ADMIN, AGENT, ANALYST = "admin", "agent", "analyst"
ROLES = (ADMIN, AGENT, ANALYST)


def role_permissions() -> dict[str, tuple[str, ...]]:
    """role -> permission specs ("app_label.codename", or "app_label.*"), gathered from the installed apps."""
    from apps.core.platform import role_permissions as declared

    return declared()


def _permissions_for(specs: tuple[str, ...]) -> list[Permission]:
    from django.contrib.auth.models import Permission

    perms: list[Permission] = []
    for spec in specs:
        app_label, _, codename = spec.partition(".")
        qs = Permission.objects.filter(content_type__app_label=app_label)
        if codename != "*":
            qs = qs.filter(codename=codename)
        perms.extend(qs)
    return perms


def ensure_roles() -> None:
    """Create the role groups and set their permissions to exactly what the apps declare (idempotent)."""
    from django.contrib.auth.models import Group

    for role, specs in role_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions_for(specs))


def has_role(user: object, *roles: str) -> bool:
    """True for superusers and members of any of `roles` (for pages of apps that have no models yet)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return bool(user.groups.filter(name__in=roles).exists())  # type: ignore[attr-defined]
