"""An app that exists only in the tests: it plugs in by its declaration alone, as a new app would."""

from apps.core.job_registry import JobKind
from apps.core.platform import ContextaApp, NavEntry, PeriodicTask
from apps.core.roles import AGENT


class PluginConfig(ContextaApp):
    name = "tests.apps.core.plugin_app"
    label = "plugin_app"
    urls = "tests.apps.core.plugin_app.urls"
    url_prefix = "plugin/"
    api_urls = "tests.apps.core.plugin_app.urls"
    api_prefix = "plugin/"
    nav = (NavEntry("Plugin", "plugin:index", roles=(AGENT,), order=40),)
    role_permissions = {AGENT: ("core.view_trainingjob",)}
    periodic_tasks = (PeriodicTask("plugin-tick", "plugin.tick", every="PLUGIN_TICK_SECONDS", expires=3),)
    job_kinds = (
        JobKind(
            name="plugin_count",
            label="Plugin count",
            queue="default",
            params="tests.apps.core.conftest.StepsParams",
            run="tests.apps.core.conftest.run_steps",
        ),
    )
    api_enums = {"PluginStatusEnum": "apps.core.models.JobStatus"}
