from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_roles(sender: AppConfig, **_: object) -> None:
    # Permissions are created by post_migrate, one app at a time, so groups are synced after each app
    # (cheap and idempotent) rather than in a migration, where they do not exist yet.
    from apps.core.roles import ensure_roles

    ensure_roles()


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Contexta core"

    def ready(self) -> None:
        post_migrate.connect(_sync_roles, dispatch_uid="core.sync_roles")
