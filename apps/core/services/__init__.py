"""Writes of the core app, grouped by entity: jobs, registry (model versions), prompts."""
