"""How an app plugs into the suite: it declares what it brings on its AppConfig, and core reads the declarations.

An app subclasses `ContextaApp` and states its dashboard and API URLs, navigation entries, role permissions,
periodic tasks, job kinds and API enum names. Core builds the URL conf, the navigation, the role groups, the
beat schedule, the job-kind registry and the OpenAPI enum names from the installed apps, so adding an app is:
create the package, declare it, add it to INSTALLED_APPS. Core names no app.

Everything a declaration points at is a dotted path, imported when first needed, so reading the declarations
imports no services, models or tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from apps.core.job_registry import JobKind


@dataclass(frozen=True)
class NavEntry:
    """A link in the top navigation, shown to users who hold `permission` or any of `roles`.

    With neither, every signed-in user sees it. `order` sorts the whole bar (core's pages come last).
    """

    label: str
    url_name: str
    permission: str = ""
    roles: tuple[str, ...] = ()
    order: int = 50

    def visible_to(self, user: Any) -> bool:
        from apps.core.roles import has_role

        if self.permission and user.has_perm(self.permission):
            return True
        if self.roles and has_role(user, *self.roles):
            return True
        return not self.permission and not self.roles


@dataclass(frozen=True)
class PeriodicTask:
    """A beat entry: run `task` every `every` seconds (a number, or the name of an integer setting).

    `expires` defaults to five seconds short of the interval, so a beat tick nobody picked up is dropped
    rather than piling up behind a stopped worker.
    """

    name: str
    task: str
    every: float | str
    expires: float | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def seconds(self) -> float:
        if isinstance(self.every, str):
            return float(getattr(settings, self.every))
        return float(self.every)

    def beat_entry(self) -> dict[str, Any]:
        seconds = self.seconds()
        expires = self.expires if self.expires is not None else max(seconds - 5, 1)
        return {
            "task": self.task,
            "schedule": timedelta(seconds=seconds),
            "kwargs": dict(self.kwargs),
            "options": {"expires": expires},
        }


class ContextaApp(AppConfig):
    """The base every Contexta app's AppConfig extends. Every attribute is optional."""

    # Django picks an apps.py's AppConfig by itself only when one class there may be the default; this base
    # is imported into every apps.py, so it steps aside and each subclass is the default of its module.
    default = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "default" not in cls.__dict__:
            cls.default = True

    # Dashboard pages: a URL conf module mounted at `url_prefix` (e.g. "sentiment/"); its `app_name` is the
    # namespace the navigation's url names use.
    urls: str = ""
    url_prefix: str = ""
    # The app's HTTP API: a URL conf module mounted at "api/" + `api_prefix`.
    api_urls: str = ""
    api_prefix: str = ""
    nav: tuple[NavEntry, ...] = ()
    # role name -> permission specs ("app_label.codename", or "app_label.*" for every permission of an app).
    role_permissions: Mapping[str, tuple[str, ...]] = {}
    periodic_tasks: tuple[PeriodicTask, ...] = ()
    job_kinds: tuple[JobKind, ...] = ()
    # OpenAPI enum component name -> dotted path of a choices class (drf-spectacular ENUM_NAME_OVERRIDES).
    api_enums: Mapping[str, str] = {}
    # Dotted paths of functions returning an `apps.core.health.Check`: the app's own part of /healthz.
    health_checks: tuple[str, ...] = ()
    # Live-update topics the app publishes (apps.core.live): a name, or a prefix ending in ".", to the
    # apps.core.access rule a user must pass to follow it ("core.view_trainingjob", SIGNED_IN, "role:...").
    live_topics: Mapping[str, str] = {}


def contexta_apps() -> list[ContextaApp]:
    """The installed Contexta apps, in INSTALLED_APPS order."""
    return [config for config in apps.get_app_configs() if isinstance(config, ContextaApp)]


def _prefixed(configs: Iterable[ContextaApp], module: str, prefix: str) -> list[tuple[str, str]]:
    mounts = [(getattr(c, prefix), getattr(c, module)) for c in configs if getattr(c, module)]
    # A longer prefix first, so "api/sentiment/" is matched before core's "api/".
    return sorted(mounts, key=lambda mount: -len(mount[0]))


def url_mounts() -> list[tuple[str, str]]:
    """(path prefix, URL conf module) for every app's API and dashboard, API first."""
    configs = contexta_apps()
    api = [("api/" + prefix, module) for prefix, module in _prefixed(configs, "api_urls", "api_prefix")]
    return api + _prefixed(configs, "urls", "url_prefix")


def navigation_entries() -> list[NavEntry]:
    entries = [entry for config in contexta_apps() for entry in config.nav]
    return sorted(entries, key=lambda entry: entry.order)


def role_permissions() -> dict[str, tuple[str, ...]]:
    """Every role any app names, with the union of the permission specs the apps give it."""
    merged: dict[str, dict[str, None]] = {}  # an ordered set per role
    for config in contexta_apps():
        for role, specs in config.role_permissions.items():
            merged.setdefault(role, {}).update(dict.fromkeys(specs))
    return {role: tuple(specs) for role, specs in merged.items()}


def beat_schedule() -> dict[str, dict[str, Any]]:
    schedule: dict[str, dict[str, Any]] = {}
    for config in contexta_apps():
        for entry in config.periodic_tasks:
            if entry.name in schedule:
                raise ImproperlyConfigured(f"periodic task {entry.name!r} is declared twice ({config.name})")
            schedule[entry.name] = entry.beat_entry()
    return schedule


def declared_job_kinds() -> list[JobKind]:
    return [kind for config in contexta_apps() for kind in config.job_kinds]


def declared_health_checks() -> list[Callable[[], Any]]:
    return [import_string(path) for config in contexta_apps() for path in config.health_checks]


def api_enums() -> dict[str, str]:
    return {name: path for config in contexta_apps() for name, path in config.api_enums.items()}


def install() -> None:
    """Core's ready(): hand the declarations to Celery beat and drf-spectacular (both read them later)."""
    from apps.celery import app as celery_app

    celery_app.conf.beat_schedule = {**celery_app.conf.beat_schedule, **beat_schedule()}
    spectacular: dict[str, Any] = settings.SPECTACULAR_SETTINGS
    spectacular["ENUM_NAME_OVERRIDES"] = {**spectacular.get("ENUM_NAME_OVERRIDES", {}), **api_enums()}
