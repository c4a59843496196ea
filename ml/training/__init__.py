"""Fine-tuning: one runner shape for every kind (progress, cancellation, seeds, artifacts)."""
