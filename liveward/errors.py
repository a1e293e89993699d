"""The root of every exception liveward raises on purpose."""


class LivewardError(Exception):
    """Base of all liveward errors; `reason` is a stable machine-readable code."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
