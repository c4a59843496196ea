from django.db.models.signals import post_migrate

from apps.core.platform import ContextaApp, NavEntry, PeriodicTask
from apps.core.roles import ADMIN, AGENT, ANALYST


def _sync_roles(sender: object, **_: object) -> None:
    # Permissions are created by post_migrate, one app at a time, so groups are synced after each app
    # (cheap and idempotent) rather than in a migration, where they do not exist yet.
    from apps.core.roles import ensure_roles

    ensure_roles()


class CoreConfig(ContextaApp):
    name = "apps.core"
    label = "core"
    verbose_name = "Contexta core"

    urls = "apps.core.urls"
    api_urls = "apps.core.api_urls"
    nav = (
        NavEntry("Overview", "core:dashboard", order=0),
        NavEntry("Jobs", "core:jobs", permission="core.view_trainingjob", order=90),
        NavEntry("Models", "core:models", permission="core.view_modelversion", order=91),
        NavEntry("Prompts", "core:prompts", permission="core.view_prompttemplate", order=92),
    )
    role_permissions = {
        ADMIN: ("core.*", "auth.*", "authtoken.*"),
        AGENT: ("core.view_prompttemplate", "core.add_promptversion", "core.view_promptversion"),
        ANALYST: (
            "core.view_trainingjob",
            "core.add_trainingjob",
            "core.run_trainingjob",
            "core.view_modelversion",
            "core.view_prompttemplate",
            "core.view_promptversion",
        ),
    }
    periodic_tasks = (
        PeriodicTask("core-reap-stuck-jobs", "core.reap_stuck_jobs", every=20),
        PeriodicTask("core-reconcile-model-store", "core.reconcile_model_store", every=3600),
    )
    live_topics = {"jobs": "core.view_trainingjob", "job.": "core.view_trainingjob"}
    api_enums = {
        "PromptLabelNameEnum": "apps.core.models.PromptLabel.Name",
        "JobStatusEnum": "apps.core.models.JobStatus",
    }

    def ready(self) -> None:
        from apps.core.platform import install

        post_migrate.connect(_sync_roles, dispatch_uid="core.sync_roles")
        install()
