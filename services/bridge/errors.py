"""Errors of the telemetry bridge; every one carries a machine-readable reason code."""

from __future__ import annotations

from liveward.errors import LivewardError


class BridgeError(LivewardError):
    """Root of every error in services/bridge."""

    reason = "bridge-error"


class RequestRejected(BridgeError):
    """The request as a whole is unusable (not JSON, bad CMCD, no samples, too many).

    `status` is the HTTP status the edge answers with (400, 413 or 415); `problems` lists
    per-item findings when there are any.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int = 400,
        problems: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status
        self.problems = problems or []


class RateLimited(BridgeError):
    """One client (address or network) sent more than its share; retry after `retry_after` s."""

    reason = "rate-limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KeyStoreError(BridgeError):
    """The pseudonym epoch keyring cannot be read, parsed or written."""

    reason = "keyring-error"


class EpochDestroyed(KeyStoreError):
    """The key of this pseudonym epoch was destroyed (crypto-shredded); it is gone for good."""

    reason = "epoch-destroyed"
