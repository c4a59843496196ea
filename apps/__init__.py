"""The Django project: settings, urls, the Celery app and the suite's apps."""

from apps.celery import app as celery_app

__all__ = ["celery_app"]
