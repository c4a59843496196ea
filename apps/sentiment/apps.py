from apps.core.job_registry import JobKind
from apps.core.platform import ContextaApp, NavEntry, PeriodicTask
from apps.core.roles import ADMIN, ANALYST

_JOBS = "apps.sentiment.jobs"
# Live-update topics (apps.core.live): the alerts and notifications, and the scored series.
LIVE_ALERTS = "sentiment.alerts"
LIVE_SERIES = "sentiment.series"


class SentimentConfig(ContextaApp):
    name = "apps.sentiment"
    label = "sentiment"
    verbose_name = "Sentiment monitor"

    urls = "apps.sentiment.urls"
    url_prefix = "sentiment/"
    api_urls = "apps.sentiment.api_urls"
    api_prefix = "sentiment/"
    nav = (NavEntry("Sentiment", "sentiment:index", roles=(ADMIN, ANALYST), order=20),)
    role_permissions = {ADMIN: ("sentiment.*",), ANALYST: ("sentiment.*",)}
    periodic_tasks = (
        PeriodicTask("sentiment-poll-feeds", "sentiment.poll_due_feeds", every=60),
        PeriodicTask("sentiment-score-stragglers", "sentiment.score_stragglers", every=600),
        PeriodicTask(
            "sentiment-alerts-evaluate", "sentiment.alerts_evaluate", every="SENTIMENT_ALERT_EVAL_SECONDS"
        ),
        PeriodicTask("sentiment-deliveries-sweep", "sentiment.deliveries_sweep", every=30),
    )
    health_checks = ("apps.sentiment.health.check_aggregation",)
    live_topics = {LIVE_ALERTS: f"role:{ADMIN},{ANALYST}", LIVE_SERIES: f"role:{ADMIN},{ANALYST}"}
    job_kinds = (
        JobKind(
            name="sentiment_train",
            label="Sentiment model (fine-tune MiniLM on finance data)",
            queue="training",
            params=f"{_JOBS}.TrainParams",
            run=f"{_JOBS}.run_train",
        ),
        JobKind(
            name="sentiment_rescore",
            label="Sentiment re-score (a time range, with the active model)",
            queue="inference",
            params=f"{_JOBS}.RescoreParams",
            run=f"{_JOBS}.run_rescore",
        ),
        JobKind(
            name="text_classifier",
            label="Text classifier (fine-tune MiniLM on a data set)",
            queue="training",
            params=f"{_JOBS}.TextClassifierParams",
            run=f"{_JOBS}.run_text_classifier",
        ),
    )
    api_enums = {
        "AlertStatusEnum": "apps.sentiment.models.Alert.Status",
        "DeliveryStatusEnum": "apps.sentiment.models.Delivery.Status",
    }
