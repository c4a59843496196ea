"""Who may call each view, declared next to the view and checked for every role by a test.

The views enforce access themselves (login_required and permission_required, DRF permission classes);
`@access` states beside them what that must add up to. tests/apps/core/test_authorization_matrix.py
enumerates every URL pattern from the resolver and every operation of the OpenAPI schema, calls each with
every role and method, and compares the answers with these declarations. A view that declares nothing
fails that test, so a new endpoint cannot ship without saying who may use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

PUBLIC = "public"  # anyone, signed in or not
SIGNED_IN = "signed_in"  # any signed-in user
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

V = TypeVar("V", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    """`read` for GET and HEAD, `write` (default: the same) for the other methods.

    Each is PUBLIC, SIGNED_IN, a permission ("core.view_trainingjob") or roles ("role:admin,agent").
    """

    read: str
    write: str | None = None

    def rule(self, method: str) -> str:
        return self.read if method in SAFE_METHODS else (self.write or self.read)

    def allows(self, user: Any, method: str) -> bool:
        rule = self.rule(method)
        if rule == PUBLIC:
            return True
        if not getattr(user, "is_authenticated", False):
            return False
        if rule == SIGNED_IN:
            return True
        if rule.startswith("role:"):
            from apps.core.roles import has_role

            return has_role(user, *rule.removeprefix("role:").split(","))
        return bool(user.has_perm(rule))


def access(read: str, write: str | None = None) -> Callable[[V], V]:
    """Declare who may call a view function or view class (see the module docstring)."""

    def declare(view: V) -> V:
        view.access = Access(read, write)  # type: ignore[attr-defined]
        return view

    return declare


def declared_access(callback: Any) -> Access | None:
    """The declaration of a resolved URL's callback (a function, or `as_view()` of a class)."""
    holders = [callback, getattr(callback, "view_class", None), getattr(callback, "cls", None)]
    # A DRF view declares through its permission classes (`apps.core.api.require` carries an Access).
    holders += list(getattr(holders[2], "permission_classes", ()))
    for holder in holders:
        found = getattr(holder, "access", None)
        if isinstance(found, Access):
            return found
    return None
