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
    """A region's processes could not be started, found or stopped (`unknown-region`,
    `not-ready`, `unknown-process`)."""
