"""Settings of the processes the fault tests start: the product's, plus an app with a slow training kind."""

from apps.settings import *  # noqa: F403
from apps.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faults.slow_app"]
