"""The Celery app. Workers run one of the queues `default`, `inference`, `training` (see the Makefile)."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")

app = Celery("contexta")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def _start_heartbeat(sender: object, **_: object) -> None:
    """Write this worker's heartbeat to the database so /healthz can see which queues are served."""
    from apps.core.heartbeat import start_heartbeat_thread

    # The sender is the worker's consumer; the queues it was started with (-Q) are in consume_from.
    queues = sorted(app.amqp.queues.consume_from or app.amqp.queues)
    start_heartbeat_thread(hostname=str(getattr(sender, "hostname", "worker")), queues=queues)


@signals.worker_shutdown.connect
def _stop_heartbeat(sender: object, **_: object) -> None:
    from apps.core.heartbeat import stop_heartbeat_thread

    stop_heartbeat_thread(hostname=str(getattr(sender, "hostname", "worker")))


@signals.beat_init.connect
def _beat_heartbeat(sender: object, **_: object) -> None:
    from apps.core.heartbeat import start_heartbeat_thread

    start_heartbeat_thread(hostname="beat", queues=["beat"])
