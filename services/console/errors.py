"""Errors of the console; each carries an HTTP status and a machine-readable reason code."""

from __future__ import annotations

from services.http import EdgeError


class ConsoleError(EdgeError):
    """Root of every error in services/console: a refusal answered with `status` and
    `reason` (`malformed-json`, `unknown-region`, `auth-unreachable`, ...)."""


class ActionRefused(ConsoleError):
    """An action's request is malformed or names something the console does not manage."""

    def __init__(self, reason: str, message: str, *, status: int = 400) -> None:
        super().__init__(status, reason, message)


class ActionFailed(ConsoleError):
    """An action was valid but what it calls failed (the auth service, Kafka, a process)."""

    def __init__(self, reason: str, message: str, *, status: int = 502) -> None:
        super().__init__(status, reason, message)


class ConsoleNotStarted(ConsoleError):
    """The console's server did not start (its port is taken, or it crashed)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "console-not-started", message)
