from django.apps import AppConfig


class SentimentConfig(AppConfig):
    name = "apps.sentiment"
    label = "sentiment"
    verbose_name = "Sentiment monitor"

    def ready(self) -> None:
        # Job kinds register themselves on import; the tasks module adds the feed-polling beat entry.
        from apps.sentiment import jobs, tasks  # noqa: F401
