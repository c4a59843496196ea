"""docker/compose.yaml: every long-running service is restarted when its process exits."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


def test_every_long_running_service_restarts_unless_stopped():
    services = yaml.safe_load(COMPOSE.read_text())["services"]  # resolves the x-app anchor's `<<` merge
    policies = {name: service.get("restart") for name, service in services.items()}
    assert policies.pop("migrate") == "no"  # a one-shot: restarting it would rerun it after every success
    assert {
        "web",
        "worker-default",
        "worker-inference",
        "worker-training",
        "beat",
        "postgres",
        "redis",
    } <= set(policies)
    assert policies == dict.fromkeys(policies, "unless-stopped")
