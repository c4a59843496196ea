"""Live updates: the one mechanism for every page that changes while somebody watches it.

A service that changes what a page shows calls `publish("jobs", f"job.{pk}")` (after its transaction commits).
A page lists the topics of its live regions (`data-live="jobs"`); static/js/live.js holds one server-sent-event
stream per page (`/live/?topic=...`, `live_stream` below) and, when a topic changes, the regions that follow
it fetch themselves again with htmx. Events say *what* changed, never carry the data: the page's own view
renders it, with the viewer's permissions, so nothing reaches a browser that its page would not show.

The transport is a Django Channels channel layer (settings.CHANNEL_LAYERS): channels-redis pub/sub when
REDIS_URL is set, which fans out across any number of web and worker processes, and in the embedded default
`apps.core.live_layer.DatabaseChannelLayer`. An open stream is an async task, not a thread, under the ASGI
server (uvicorn), so idle viewers cost memory, not workers.

Which topics a user may follow is declared by the apps (`ContextaApp.live_topics`: a name, or a prefix
ending in ".", to an `apps.core.access` rule), and checked when the stream opens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from apps.core.access import SIGNED_IN, Access, access

logger = logging.getLogger(__name__)

TOPIC = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,89}$")  # a channel-layer group name, with room for a prefix
MAX_TOPICS = 12
MESSAGE_TYPE = "live.change"

_last_sent: dict[str, float] = {}
_last_sent_lock = threading.Lock()


def publish(*topics: str, coalesce: bool = False) -> None:
    """Tell the pages that follow `topics` that they changed, once the current transaction commits.

    `coalesce=True` (progress, log lines) sends a topic at most every LIVE_COALESCE_SECONDS from this
    process; the state changes that end a burst (a job finishing) are published without it, so the last
    word always arrives. A failure to publish is logged and never fails the write that caused it.
    """
    wanted = [topic for topic in topics if not coalesce or _due(topic)]
    if wanted:
        transaction.on_commit(partial(_send, wanted))


def _due(topic: str) -> bool:
    now = time.monotonic()
    with _last_sent_lock:
        if now - _last_sent.get(topic, -1e9) < settings.LIVE_COALESCE_SECONDS:
            return False
        _last_sent[topic] = now
        return True


def _send(topics: Iterable[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    # Looked up on the class: channels-redis's layer answers attributes only inside an event loop.
    sync = getattr(type(layer), "group_send_sync", None) is not None
    for topic in topics:
        message = {"type": MESSAGE_TYPE, "topic": topic}
        try:
            if sync:
                layer.group_send_sync(topic, message)
            else:
                async_to_sync(layer.group_send)(topic, message)
        except Exception as exc:  # the write that caused it stands; pages catch up when they reconnect
            logger.warning("live update for %s not sent: %s: %s", topic, type(exc).__name__, exc)


def declared_topics() -> list[tuple[str, Access]]:
    from apps.core.platform import contexta_apps

    return [(name, Access(rule)) for config in contexta_apps() for name, rule in config.live_topics.items()]


def topic_access(topic: str) -> Access | None:
    """The declaration that covers `topic`: its exact name, or the longest prefix ending in "."."""
    found: tuple[str, Access] | None = None
    for name, rule in declared_topics():
        covers = topic == name or (name.endswith(".") and topic.startswith(name))
        if covers and (found is None or len(name) > len(found[0])):
            found = (name, rule)
    return found[1] if found else None


def topics_problem(user: Any, topics: list[str]) -> tuple[int, str] | None:
    """Why `user` may not follow `topics` (HTTP status and a message), or None."""
    if not topics:
        return 400, "name at least one topic: /live/?topic=jobs"
    if len(topics) > MAX_TOPICS:
        return 400, f"at most {MAX_TOPICS} topics per stream, not {len(topics)}"
    for topic in topics:
        if not TOPIC.match(topic):
            return 400, f"{topic[:100]!r} is not a topic name (lower-case letters, digits, '.', '_', '-')"
        rule = topic_access(topic)
        if rule is None:
            return 400, f"unknown topic {topic!r}"
        if not rule.allows(user, "GET"):
            return 403, f"you may not follow {topic!r}"
    return None


@access(SIGNED_IN)
@require_GET
async def live_stream(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """GET /live/?topic=a&topic=b: a text/event-stream of `{"topic": ...}` events for the signed-in user."""
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"detail": "sign in to follow live updates"}, status=403)
    if not isinstance(request, ASGIRequest):
        # Under WSGI a stream would hold a thread until it ends. 204 tells EventSource not to reconnect:
        # the page works, without live updates.
        return HttpResponse(status=204, headers={"X-Live": "needs the ASGI server (apps.asgi)"})
    topics = list(dict.fromkeys(request.GET.getlist("topic")))
    problem = await sync_to_async(topics_problem)(user, topics)
    if problem:
        return JsonResponse({"detail": problem[1]}, status=problem[0])
    response = StreamingHttpResponse(_events(topics), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # a buffering proxy (nginx) would hold the events back
    return response


async def _events(topics: list[str]) -> AsyncIterator[str]:
    """The stream: events as they come, a comment every LIVE_KEEPALIVE_SECONDS, and an end after
    LIVE_STREAM_SECONDS (the browser reconnects by itself, and the permission check runs again)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for topic in topics:
        await layer.group_add(topic, channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.LIVE_STREAM_SECONDS
    # One receive at a time, never cancelled by a keep-alive: channels-redis unsubscribes a cancelled one.
    pending: asyncio.Future[Any] | None = None
    try:
        yield f"retry: {settings.LIVE_RETRY_MS}\n: open\n\n"
        while (left := deadline - loop.time()) > 0:
            pending = pending or asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({pending}, timeout=min(settings.LIVE_KEEPALIVE_SECONDS, left))
            if not done:
                yield ": keep-alive\n\n"
                continue
            message, pending = pending.result(), None
            yield "data: " + json.dumps({"topic": message.get("topic", "")}) + "\n\n"
    finally:
        if pending is not None:
            pending.cancel()
        for topic in topics:
            await layer.group_discard(topic, channel)
