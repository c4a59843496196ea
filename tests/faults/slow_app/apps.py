"""A training kind that takes as long as a test needs, so a worker can be killed in the middle of it, and
(FAULT_SCORE_SECONDS) scoring slowed down per text, so an inference worker can be killed mid-scoring."""

import os
import time
from typing import Any

from apps.core.job_registry import JobKind
from apps.core.platform import ContextaApp


class SlowAppConfig(ContextaApp):
    name = "tests.faults.slow_app"
    label = "fault_slow_app"
    job_kinds = (
        JobKind(
            name="fault_slow_train",
            label="Slow fake training (fault tests)",
            queue="training",
            params="tests.faults.slow_app.jobs.SlowTrainParams",
            run="tests.faults.slow_app.jobs.run_slow_train",
        ),
    )

    def ready(self) -> None:
        super().ready()
        delay = float(os.environ.get("FAULT_SCORE_SECONDS", "0"))
        if delay:
            from apps.sentiment.services import scoring

            real = scoring.classify_texts

            def slow(artifact_dir: str, texts: Any, backend: str | None = None) -> Any:
                time.sleep(delay * len(texts))
                return real(artifact_dir, texts, backend)

            scoring.classify_texts = slow  # type: ignore[assignment]
