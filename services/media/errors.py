"""Errors of the media plane; every one carries a machine-readable reason code."""

from __future__ import annotations

from liveward.errors import LivewardError


class MediaError(LivewardError):
    """Root of every error in services/media."""

    reason = "media-error"


class HttpFailure(MediaError):
    """An HTTP exchange did not complete: `connect-refused`, `timeout`, `connection-lost`,
    `bad-response` or `bad-url`."""


class RegionError(MediaError):
    """A region or one of its processes is not known: `unknown-region`, `unknown-process`."""
