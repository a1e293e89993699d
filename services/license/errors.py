"""Errors of the license service; every one carries a reason code and a refusal class."""

from __future__ import annotations

from enum import StrEnum

from liveward.errors import LivewardError


class Refusal(StrEnum):
    """The class of a refusal; each edge maps it to its own status (HTTP, gRPC)."""

    BAD_REQUEST = "bad-request"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    PAYLOAD_TOO_LARGE = "payload-too-large"
    UNAVAILABLE = "unavailable"


HTTP_STATUS: dict[Refusal, int] = {
    Refusal.BAD_REQUEST: 400,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.FORBIDDEN: 403,
    Refusal.NOT_FOUND: 404,
    Refusal.PAYLOAD_TOO_LARGE: 413,
    Refusal.UNAVAILABLE: 503,
}


class LicenseError(LivewardError):
    """Root of every error in services/license: a request the service does not answer
    with keys. `refusal` says which class of answer it gets, `reason` the exact code."""

    reason = "license-error"

    def __init__(
        self,
        refusal: Refusal,
        reason: str,
        message: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or reason, reason=reason)
        self.refusal = refusal
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.refusal]
