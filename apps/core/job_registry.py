"""Job kinds: what a TrainingJob row can run, declared by the apps (`ContextaApp.job_kinds`).

A kind names its queue, a parameter schema (a DRF serializer: the API, the dashboard form and the command line
all validate through it) and the function that runs it, both as dotted paths, so this module imports no
services and reading the registry loads no model code. `apps.core.services.jobs.job_run` runs a kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.core.errors import Forbidden, ServiceError

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from apps.core.job_params import JobParams
    from apps.core.job_reporter import JobReporter
    from apps.core.models import TrainingJob


@dataclass(frozen=True)
class JobOutcome:
    """What a kind's run function returns: metrics for the registry and a result shown on the job page."""

    metrics: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    queue: str
    params: str  # dotted path of a rest_framework Serializer class: the parameters and their checks
    run: str  # dotted path of run(job, reporter) -> JobOutcome
    description: str = ""
    permission: str = "core.run_trainingjob"  # to start the kind at all, the same for every path
    # Jobs of this kind queued or running at once, per user and in all (None: JOB_QUOTA_PER_USER/_TOTAL).
    quota_per_user: int | None = None
    quota_total: int | None = None

    def quotas(self) -> tuple[int, int]:
        """(per user, in all): the settings, or the kind's own when lower."""
        per_user, total = settings.JOB_QUOTA_PER_USER, settings.JOB_QUOTA_TOTAL
        return min(self.quota_per_user or per_user, per_user), min(self.quota_total or total, total)

    def params_serializer(self) -> type[JobParams]:
        return import_string(self.params)  # type: ignore[no-any-return]

    def runner(self) -> Callable[[TrainingJob, JobReporter], JobOutcome]:
        return import_string(self.run)  # type: ignore[no-any-return]

    def validate(
        self, params: object, *, trusted: bool = False, user: User | AnonymousUser | None = None
    ) -> dict[str, Any]:
        """The parameters as the job will store them (defaults filled in), or a ServiceError naming the field.

        The serializer sees `trusted` in its context (True only for the command line, see `job_create_local`).
        `user` must hold the kind's permission and whatever the parameters need (`Forbidden` otherwise);
        None is the suite itself (a job that starts a follow-up job, the command line), which holds them all.
        """
        if not isinstance(params, Mapping):
            raise ServiceError('params must be a JSON object, like {"epochs": 1}', field="params")
        schema = self.params_serializer()
        known = set(schema().fields)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ServiceError(
                f"unknown parameters: {', '.join(unknown)} ({self.name} takes {', '.join(sorted(known))})",
                field="params",
            )
        serializer = schema(data=dict(params), context={"trusted": trusted})
        if not serializer.is_valid():
            raise serializer.first_error(params)
        if user is not None:
            needed = [(self.permission, f"starting a {self.name} job")]
            self._authorize(user, needed + serializer.required_permissions(serializer.validated_data))
        return {key: _plain(value) for key, value in serializer.validated_data.items()}

    @staticmethod
    def _authorize(user: User | AnonymousUser, needed: list[tuple[str, str]]) -> None:
        for permission, why in needed:
            if not user.has_perm(permission):
                raise Forbidden(f"{why} needs the {permission} permission, which {user} lacks")


def _plain(value: Any) -> Any:
    """Validated values as JSON (the row stores them in a JSONField)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


_overrides: list[dict[str, JobKind]] = []


def _check(kinds: list[JobKind]) -> dict[str, JobKind]:
    table: dict[str, JobKind] = {}
    for kind in kinds:
        if kind.name in table:
            raise ImproperlyConfigured(f"job kind {kind.name!r} is declared twice")
        if kind.queue not in settings.QUEUES:
            raise ImproperlyConfigured(f"job kind {kind.name}: unknown queue {kind.queue!r}")
        table[kind.name] = kind
    return table


def _kinds() -> dict[str, JobKind]:
    from apps.core.platform import declared_job_kinds

    table = _check(declared_job_kinds())
    for layer in _overrides:
        table.update(layer)
    return table


def get_kind(name: str) -> JobKind:
    kinds = _kinds()
    try:
        return kinds[name]
    except KeyError:
        raise ServiceError(
            f"unknown job kind {name!r}; known: {', '.join(sorted(kinds))}", field="kind"
        ) from None


def all_kinds() -> list[JobKind]:
    return sorted(_kinds().values(), key=lambda kind: kind.name)


@contextmanager
def override_kinds(*kinds: JobKind) -> Iterator[None]:
    """Tests: make `kinds` known (or replace declared ones of the same name) inside the block."""
    _overrides.append(_check(list(kinds)))
    try:
        yield
    finally:
        _overrides.pop()
