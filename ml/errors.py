"""Errors the ML core raises for expected failures. All are ValueErrors, so callers can treat them as bad input."""


class MLError(ValueError):
    """Base class for every expected ML failure."""


class InvalidInput(MLError):
    """The caller passed something the models cannot take (wrong type, no texts, bad labels)."""


class ArtifactError(MLError):
    """A model artifact directory is missing, incomplete or corrupt; the message names the path."""


class Cancelled(MLError):
    """A training run stopped because cancellation was requested."""


class GenerationError(MLError):
    """The generator backend failed: unreachable, timed out, or its answer is not a completion."""
