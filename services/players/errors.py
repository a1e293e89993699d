"""Errors of the simulated players; every one carries a machine-readable reason code."""

from __future__ import annotations

from liveward.errors import LivewardError


class PlayerError(LivewardError):
    """Root of every error in services/players."""

    reason = "player-error"


class PlaylistError(PlayerError):
    """A playlist or steering manifest a player cannot use: `malformed-multivariant`,
    `malformed-media-playlist`, `malformed-steering-manifest`."""
