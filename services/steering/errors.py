"""Errors of the steering service; every one carries a machine-readable reason code."""

from __future__ import annotations

from liveward.errors import LivewardError


class SteeringError(LivewardError):
    """Root of every error in services/steering."""

    reason = "steering-error"


class MalformedRequest(SteeringError):
    """A steering request a player should not have sent (answered 400)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


class UnknownContent(SteeringError):
    """No live stream of that id, nor a steering entry for it (answered 404)."""

    reason = "unknown-content"
