"""Errors of the auth service; every one carries a machine-readable reason code."""

from __future__ import annotations

from liveward.errors import LivewardError


class AuthError(LivewardError):
    """Root of every error in services/auth."""

    reason = "auth-error"


class TokenRejected(AuthError):
    """A token failed verification; `reason` says why (e.g. `kid-retired`, `token-expired`)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason, reason=reason)


class ApiKeyInvalid(AuthError):
    """No API key, or one without the role the route needs."""

    reason = "api-key-invalid"


class KeyringError(AuthError):
    """The signing keyring file cannot be read, parsed or written."""

    reason = "keyring-error"


class AccessRefused(AuthError):
    """A request is well formed but not allowed: unknown viewer, not entitled, policy."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


class SubscriberInvalid(AuthError):
    """A subscriber record does not validate; `line` is set by the bulk loader."""

    reason = "subscriber-invalid"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
