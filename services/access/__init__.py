"""Access control every edge embeds: client address, geo facts, policy decisions, revocation."""

from __future__ import annotations

from liveward.errors import LivewardError


class AccessError(LivewardError):
    """Root of the access package's errors; `reason` is a stable machine-readable code."""

    reason = "access-error"
