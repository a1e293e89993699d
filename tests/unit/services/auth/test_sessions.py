"""Counting a viewer's live sessions for the concurrent-stream limit."""

from __future__ import annotations

from services.auth.sessions import ActiveSessions
from streams.events import TokenIssued


def _issued(session: str, *, expires_at: int, version: int = 0) -> TokenIssued:
    return TokenIssued(
        event_id="e", occurred_at=0, region="eu-west", token_id=f"t-{session}-{expires_at}",
        session_id=session, viewer_ref="v", device_ref="d", device_class="tv",
        content_id="c", country="SE", ip_prefix="192.0.2.0/24", issued_at=expires_at - 300_000,
        expires_at=expires_at, signing_key_id="k", session_version=version,
    )  # fmt: skip


def test_renewals_of_one_session_count_once_and_expiry_frees_it() -> None:
    sessions = ActiveSessions()
    sessions.note(_issued("s1", expires_at=1_000))
    sessions.note(_issued("s1", expires_at=2_000))
    sessions.note(_issued("s2", expires_at=1_500))
    assert sessions.count("v", now_ms=0) == 2
    assert sessions.count("v", now_ms=0, excluding="s1") == 1
    assert sessions.count("v", now_ms=1_500) == 1
    assert sessions.count("v", now_ms=2_000) == 0
    assert sessions.count("someone-else", now_ms=0) == 0


def test_sessions_the_caller_deems_dead_do_not_count() -> None:
    sessions = ActiveSessions()
    sessions.note(_issued("old", expires_at=9_000, version=0))
    sessions.note(_issued("new", expires_at=9_000, version=1))
    assert sessions.count("v", now_ms=0, alive=lambda r: r.session_version >= 1) == 1
