"""The revocation enforcement library any service embeds: `is this token revoked?`, in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from liveward.settings import Settings
from processors.revocation_list import entry_key
from streams.events import RevocationListEntry, RevocationScope
from streams.meta import now_ms
from streams.views import CompactedTopicView

REVOCATION_LIST_TOPIC = "auth.revocation-list"


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """What revocation can name in a token: its id, session, device, viewer, and issue time."""

    token_id: str
    session_id: str
    viewer_ref: str
    device_ref: str
    issued_at_ms: int


Lookup = Callable[[str], RevocationListEntry | None]


def revocation_reason(lookup: Lookup, token: TokenIdentity, *, now_ms: int) -> str | None:
    """Why token is revoked (a reason code), or None. Pure: the list comes in as `lookup`.

    Token and session entries kill every token they name. Device and viewer entries kill
    the tokens issued before the revocation: after it, the viewer may sign in again and
    play on (the re-issue after theft). Entries past their expiry no longer count.
    """
    checks = (
        (RevocationScope.TOKEN, token.token_id, "token-revoked", False),
        (RevocationScope.SESSION, token.session_id, "session-revoked", False),
        (RevocationScope.DEVICE, token.device_ref, "device-revoked", True),
        (RevocationScope.VIEWER, token.viewer_ref, "viewer-revoked", True),
    )
    for scope, subject, reason, only_older in checks:
        entry = lookup(entry_key(scope, subject))
        if entry is None or entry.expires_at <= now_ms:
            continue
        if only_older and token.issued_at_ms >= entry.revoked_at:
            continue
        return reason
    return None


class RevocationEnforcer:
    """Follows the compacted revocation list and answers `check()` from memory."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], int] = now_ms,
        on_change: Callable[[str, RevocationListEntry | None], None] | None = None,
    ) -> None:
        self._clock = clock
        self._view = CompactedTopicView(
            settings, REVOCATION_LIST_TOPIC, RevocationListEntry, on_change=on_change
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start following the list; `ready()` once it has caught up with it."""
        self._view.start(timeout)

    def wait_ready(self, timeout: float) -> bool:
        return self._view.wait_ready(timeout)

    def ready(self) -> bool:
        return self._view.ready()

    def check(self, token: TokenIdentity) -> str | None:
        """The reason code token is revoked for, or None if it is not revoked."""
        return revocation_reason(self._view.get, token, now_ms=self._clock())

    def __len__(self) -> int:
        return len(self._view)

    def close(self) -> None:
        self._view.close()
