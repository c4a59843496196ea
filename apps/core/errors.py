class ServiceError(Exception):
    """An expected failure of a service call; the message is shown to the user as is."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Forbidden(ServiceError):
    """The caller may not do this (the API answers 403); pages show the message like any ServiceError."""

    status_code = 403


class QuotaExceeded(ServiceError):
    """Too much of something is already queued or in flight (the API answers 429)."""

    status_code = 429
