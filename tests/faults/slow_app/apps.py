"""A training kind that takes as long as a test needs, so a worker can be killed in the middle of it."""

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
