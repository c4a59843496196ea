"""Apps plug in by declaring what they bring on their AppConfig; core reads the declarations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from apps.core import platform
from apps.core.job_registry import all_kinds, get_kind
from apps.core.roles import ADMIN, AGENT, ANALYST, role_permissions

PLUGIN = "tests.apps.core.plugin_app"


@pytest.fixture
def plugin_installed(settings):
    settings.PLUGIN_TICK_SECONDS = 15
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, PLUGIN]):
        yield


def test_the_installed_apps_declare_the_suite():
    labels = [config.label for config in platform.contexta_apps()]
    assert labels == ["core", "support", "sentiment", "recommender"]
    # the recommender has no pages yet, so no navigation entry
    assert [e.label for e in platform.navigation_entries()] == [
        "Overview",
        "Support",
        "Sentiment",
        "Jobs",
        "Models",
        "Prompts",
    ]
    assert {"sentiment_train", "sentiment_rescore", "text_classifier", "support_ingest"} <= {
        k.name for k in all_kinds()
    }


def test_roles_hold_what_the_apps_declare():
    roles = role_permissions()
    assert {"core.*", "auth.*", "support.*", "sentiment.*", "recommender.*"} <= set(roles[ADMIN])
    assert "support.*" in roles[AGENT] and "sentiment.*" not in roles[AGENT]
    assert {"sentiment.*", "recommender.*", "core.run_trainingjob"} <= set(roles[ANALYST])


def test_beat_runs_every_declared_periodic_task():
    from apps.celery import app

    app.loader.import_default_modules()  # what a worker and beat do at start: load every app's tasks
    schedule = app.conf.beat_schedule
    assert set(platform.beat_schedule()) <= set(schedule)
    for name, entry in schedule.items():
        assert entry["task"] in app.tasks, f"{name} names a task no worker has: {entry['task']}"
        assert entry["options"]["expires"] < entry["schedule"].total_seconds()


def test_a_new_app_plugs_in_by_its_declaration_alone(plugin_installed):
    assert [e.label for e in platform.navigation_entries()][1:4] == [
        "Support",
        "Sentiment",
        "Plugin",
    ]  # by order
    assert ("api/plugin/", f"{PLUGIN}.urls") in platform.url_mounts()
    assert ("plugin/", f"{PLUGIN}.urls") in platform.url_mounts()
    assert "core.view_trainingjob" in role_permissions()[AGENT]
    assert get_kind("plugin_count").validate({}) == {"steps": 3, "cancel_at": None}
    tick = platform.beat_schedule()["plugin-tick"]
    assert tick["task"] == "plugin.tick" and tick["schedule"] == timedelta(seconds=15)
    assert tick["options"] == {"expires": 3}
    assert platform.api_enums()["PluginStatusEnum"] == "apps.core.models.JobStatus"


def test_api_urls_are_mounted_before_core_catch_alls(plugin_installed):
    mounts = [prefix for prefix, _ in platform.url_mounts()]
    assert mounts.index("api/plugin/") < mounts.index("api/")
    assert mounts.index("api/sentiment/") < mounts.index("api/")


def test_a_periodic_task_declared_twice_is_refused(plugin_installed, monkeypatch):
    from tests.apps.core.plugin_app.apps import PluginConfig

    monkeypatch.setattr(PluginConfig, "periodic_tasks", (*PluginConfig.periodic_tasks,) * 2)
    with pytest.raises(ImproperlyConfigured, match="plugin-tick"):
        platform.beat_schedule()


@pytest.mark.django_db
def test_navigation_shows_each_role_its_own_apps(client, make_user):
    seen = {}
    for role in (ADMIN, AGENT, ANALYST):
        client.force_login(make_user(role))
        seen[role] = [label for label, _ in client.get("/").context["nav"]]
    assert seen[ADMIN] == ["Overview", "Support", "Sentiment", "Jobs", "Models", "Prompts"]
    assert seen[AGENT] == ["Overview", "Support", "Prompts"]
    assert seen[ANALYST] == ["Overview", "Sentiment", "Jobs", "Models", "Prompts"]


def test_the_schema_names_enums_from_the_declarations(settings):
    overrides = settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]
    assert overrides["JobStatusEnum"] == "apps.core.models.JobStatus"
    assert overrides["AlertStatusEnum"] == "apps.sentiment.models.Alert.Status"
