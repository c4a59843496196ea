"""The embedded default's channel layer: live updates between processes on one machine without Redis.

Channels' in-memory layer delivers to the streams this process holds; what crosses processes (a worker's job
progress to the web server's open pages) goes through a table: `group_send` writes a row, and every process
that holds a stream reads the new rows every `poll_interval` seconds and delivers them to its groups.
One reader per process, not per stream, and only while the process holds a stream. Production uses
channels-redis instead (settings.CHANNEL_LAYERS), which needs none of this.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer
from django.utils import timezone

logger = logging.getLogger(__name__)


class DatabaseChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]  # channels has no type hints
    def __init__(self, poll_interval: float = 0.5, retention: float = 600, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_interval = poll_interval
        self.retention = retention
        self._reader: asyncio.Task[None] | None = None
        self._sent = 0

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        if self._reader is None or self._reader.done():
            # The cursor is taken before the first subscriber returns, so nothing sent after is missed.
            cursor = await database_sync_to_async(_latest_id)()
            self._reader = asyncio.get_running_loop().create_task(self._read(cursor))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await database_sync_to_async(self.group_send_sync)(group, message)

    def group_send_sync(self, group: str, message: dict[str, Any]) -> None:
        """Called from synchronous code (services, Celery tasks) without an event loop."""
        from apps.core.models import LiveEvent

        self.require_valid_group_name(group)
        LiveEvent.objects.create(group=group, message=message)
        self._sent += 1
        if self._sent % 200 == 1:
            _prune(self.retention)

    async def _read(self, cursor: int) -> None:
        while self.groups:
            try:
                rows = await database_sync_to_async(_after)(cursor)
            except Exception as exc:  # a locked or restarting database: try again at the next tick
                logger.warning("live updates: reading the event table failed: %s", exc)
                rows = []
            for pk, group, message in rows:
                cursor = pk
                await InMemoryChannelLayer.group_send(self, group, message)
            await asyncio.sleep(self.poll_interval)

    async def flush(self) -> None:
        await super().flush()
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None


def _latest_id() -> int:
    from apps.core.models import LiveEvent

    return LiveEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _after(cursor: int) -> list[tuple[int, str, dict[str, Any]]]:
    from apps.core.models import LiveEvent

    return list(
        LiveEvent.objects.filter(pk__gt=cursor).order_by("pk").values_list("pk", "group", "message")[:500]
    )


def _prune(retention: float) -> None:
    from apps.core.models import LiveEvent

    LiveEvent.objects.filter(created_at__lt=timezone.now() - timedelta(seconds=retention)).delete()
