"""Sentiment's part of /healthz (declared on SentimentConfig.health_checks)."""

from __future__ import annotations

from apps.core.health import Check
from apps.sentiment.selectors import aggregation_failure


def check_aggregation() -> Check:
    """Failing while the newest re-score job failed: scored items may be missing from the series."""
    failed = aggregation_failure()
    if failed is None:
        return Check("sentiment:aggregation", True, "the series cover the scored items", critical=False)
    return Check(
        "sentiment:aggregation",
        False,
        f"re-score job #{failed.pk} failed ({failed.error[:200]}): run it again from its job page or "
        f"POST /api/jobs/{failed.pk}/retry/",
        {"job": failed.pk},
        critical=False,  # a data problem for people to fix: the web and the workers still serve
    )
