"""Live updates (apps.core.live): who may follow what, publishing after commit, the database layer between
processes, and the event stream itself."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction
from django.test import AsyncClient

from apps.core import live, roles
from apps.core.live_layer import DatabaseChannelLayer
from apps.core.models import LiveEvent


def _groups() -> list[str]:
    return list(LiveEvent.objects.order_by("pk").values_list("group", flat=True))


DATABASE_LAYER = {
    "default": {"BACKEND": "apps.core.live_layer.DatabaseChannelLayer", "CONFIG": {"poll_interval": 0.05}}
}


@pytest.fixture(autouse=True)
def database_layer(settings: Any, request: pytest.FixtureRequest) -> None:
    """The embedded default's layer, whatever REDIS_URL says (the Redis test sets its own)."""
    if "services" not in request.keywords:
        settings.CHANNEL_LAYERS = DATABASE_LAYER


@pytest.fixture
def no_coalescing(settings: Any) -> None:
    settings.LIVE_COALESCE_SECONDS = 0
    live._last_sent.clear()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "topics", "expected"),
    [
        (roles.ANALYST, ["jobs", "job.12", "sentiment.alerts", "sentiment.series"], None),
        (roles.ADMIN, ["jobs"], None),
        (roles.AGENT, ["jobs"], 403),  # agents do not see jobs
        (roles.AGENT, ["sentiment.alerts"], 403),
        (roles.AGENT, ["support.kb.3"], None),
        (roles.ANALYST, ["support.kb.3"], 403),  # analysts do not see the knowledge bases
        (roles.ANALYST, ["nope"], 400),
        (roles.ANALYST, ["sentiment.alerts.extra"], 400),  # an exact name is not a prefix
        (roles.ANALYST, ["Jobs"], 400),
        (roles.ANALYST, [], 400),
        (roles.ANALYST, [f"job.{n}" for n in range(live.MAX_TOPICS + 1)], 400),
    ],
)
def test_who_may_follow_which_topic(
    make_user: Any, role: str, topics: list[str], expected: int | None
) -> None:
    problem = live.topics_problem(make_user(role), topics)
    assert (problem[0] if problem else None) == expected


@pytest.mark.django_db
def test_published_only_when_the_write_commits(
    no_coalescing: None, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        live.publish("jobs")
        raise RuntimeError("rolled back")
    assert _groups() == []
    with django_capture_on_commit_callbacks(execute=True):
        live.publish("jobs", "job.3")
    assert _groups() == ["jobs", "job.3"]


@pytest.mark.django_db
def test_progress_is_coalesced_but_state_changes_are_not(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.LIVE_COALESCE_SECONDS = 60
    live._last_sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            live.publish("job.1", coalesce=True)
        live.publish("job.1")  # the job finished: always sent
    assert _groups() == ["job.1", "job.1"]


@pytest.mark.django_db
def test_job_changes_reach_the_job_and_the_lists(
    no_coalescing: None, counting_kind: str, make_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from apps.core.services.jobs import job_cancel, job_create

    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(kind=counting_kind, params={}, user=make_user(roles.ADMIN))
    assert {"jobs", f"job.{job.pk}"} <= set(_groups())
    LiveEvent.objects.all().delete()
    job.refresh_from_db()
    if not job.is_finished:
        with django_capture_on_commit_callbacks(execute=True):
            job_cancel(job=job)
        assert {"jobs", f"job.{job.pk}"} <= set(_groups())


@pytest.mark.django_db
def test_a_failed_publish_is_logged_and_the_write_stands(
    no_coalescing: None, monkeypatch: pytest.MonkeyPatch, caplog: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def broken(self: Any, group: str, message: dict[str, Any]) -> None:
        raise ConnectionError("layer down")

    monkeypatch.setattr(DatabaseChannelLayer, "group_send_sync", broken)
    with (
        caplog.at_level(logging.WARNING, logger="apps.core.live"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        live.publish("jobs")
    assert "live update for jobs not sent: ConnectionError: layer down" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_database_layer_carries_a_message_between_two_processes_layers() -> None:
    """Two layer instances stand for the worker (sender) and the web process (holder of a stream)."""
    sender, web = DatabaseChannelLayer(), DatabaseChannelLayer(poll_interval=0.05)

    async def scenario() -> list[dict[str, Any]]:
        channel = await web.new_channel()
        await web.group_add("jobs", channel)
        await sync_to_async(sender.group_send_sync)("jobs", {"type": live.MESSAGE_TYPE, "topic": "jobs"})
        await sync_to_async(sender.group_send_sync)("other", {"type": live.MESSAGE_TYPE, "topic": "other"})
        await sync_to_async(sender.group_send_sync)("jobs", {"type": live.MESSAGE_TYPE, "topic": "jobs"})
        got = [await asyncio.wait_for(web.receive(channel), 5) for _ in range(2)]
        await web.group_discard("jobs", channel)
        await web.flush()
        return got

    got = async_to_sync(scenario)()
    assert [m["topic"] for m in got] == ["jobs", "jobs"]


@pytest.mark.django_db(transaction=True)
def test_the_stream_sends_what_is_published_after_it_opened(make_user: Any, settings: Any) -> None:
    settings.LIVE_KEEPALIVE_SECONDS = 0.2
    settings.LIVE_STREAM_SECONDS = 3
    settings.LIVE_COALESCE_SECONDS = 0
    user = make_user(roles.ANALYST)

    async def scenario() -> tuple[int, str, list[str]]:
        client = AsyncClient()
        await sync_to_async(client.force_login)(user)
        response = await client.get("/live/?topic=jobs&topic=sentiment.alerts")
        chunks = aiter(response.streaming_content)
        first = (await anext(chunks)).decode()
        await sync_to_async(live._send)(["job.9", "sentiment.alerts"])  # job.9 is not followed
        seen: list[str] = []
        async for chunk in chunks:
            seen.append(chunk.decode())
            if "data:" in chunk.decode():
                break
        return response.status_code, response["Content-Type"] + "|" + first, seen

    status, head, seen = async_to_sync(scenario)()
    assert status == 200
    assert head.startswith("text/event-stream|retry: ")
    data = [json.loads(c.removeprefix("data: ")) for c in seen if c.startswith("data:")]
    assert data == [{"topic": "sentiment.alerts"}]


@pytest.mark.django_db(transaction=True)
def test_the_stream_refuses_the_anonymous_and_unknown_topics(make_user: Any) -> None:
    user = make_user(roles.ANALYST)

    async def scenario() -> list[Any]:
        client = AsyncClient()
        anonymous = await client.get("/live/?topic=jobs")
        await sync_to_async(client.force_login)(user)
        return [anonymous, await client.get("/live/?topic=nope")]

    anonymous, unknown = async_to_sync(scenario)()
    assert anonymous.status_code == 403
    assert unknown.status_code == 400
    assert unknown.json() == {"detail": "unknown topic 'nope'"}


@pytest.mark.django_db
def test_under_wsgi_the_stream_tells_the_browser_not_to_retry(client: Any, make_user: Any) -> None:
    client.force_login(make_user(roles.ANALYST))
    response = client.get("/live/?topic=jobs")
    assert response.status_code == 204
    assert "ASGI" in response["X-Live"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_redis_pub_sub_carries_a_worker_publish_to_a_stream(settings: Any) -> None:
    """The production layer: a synchronous publish (as a Celery task makes it) reaches an async subscriber."""
    import threading

    from channels.layers import get_channel_layer

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": "contexta-live-test"},
        }
    }

    async def scenario() -> dict[str, Any]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("jobs", channel)
        worker = threading.Thread(target=live._send, args=(["jobs"],))
        worker.start()
        message = await asyncio.wait_for(layer.receive(channel), 5)
        worker.join()
        await layer.group_discard("jobs", channel)
        return message

    assert async_to_sync(scenario)()["topic"] == "jobs"
