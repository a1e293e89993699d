"""What the enforcement library decides from the revocation list (pure part)."""

from __future__ import annotations

from processors.revocation_list import entry_key
from services.access.revocation import TokenIdentity, revocation_reason
from streams.events import RevocationListEntry, RevocationScope

NOW = 1_700_000_000_000
TOKEN = TokenIdentity(
    token_id="t1", session_id="s1", viewer_ref="v1", device_ref="d1", issued_at_ms=NOW - 60_000
)


def _entry(scope: RevocationScope, subject: str, *, revoked_at: int = NOW - 1_000,
           expires_at: int = NOW + 300_000) -> RevocationListEntry:  # fmt: skip
    return RevocationListEntry(
        event_id="e", occurred_at=revoked_at, region="eu-west", scope=scope, subject=subject,
        reason="test", revoked_at=revoked_at, expires_at=expires_at, revocation_ids=("r",),
    )  # fmt: skip


def _lookup(*entries: RevocationListEntry):  # type: ignore[no-untyped-def]
    table = {entry_key(e.scope, e.subject): e for e in entries}
    return table.get


def test_nothing_on_the_list_means_not_revoked() -> None:
    assert revocation_reason(_lookup(), TOKEN, now_ms=NOW) is None


def test_each_scope_has_its_reason() -> None:
    cases = [
        (RevocationScope.TOKEN, "t1", "token-revoked"),
        (RevocationScope.SESSION, "s1", "session-revoked"),
        (RevocationScope.DEVICE, "d1", "device-revoked"),
        (RevocationScope.VIEWER, "v1", "viewer-revoked"),
    ]
    for scope, subject, reason in cases:
        assert revocation_reason(_lookup(_entry(scope, subject)), TOKEN, now_ms=NOW) == reason


def test_other_subjects_do_not_match() -> None:
    lookup = _lookup(_entry(RevocationScope.TOKEN, "t2"), _entry(RevocationScope.VIEWER, "v2"))
    assert revocation_reason(lookup, TOKEN, now_ms=NOW) is None


def test_a_viewer_revocation_spares_tokens_issued_after_it() -> None:
    lookup = _lookup(_entry(RevocationScope.VIEWER, "v1", revoked_at=NOW - 120_000))
    assert revocation_reason(lookup, TOKEN, now_ms=NOW) is None
    older = TokenIdentity("t0", "s0", "v1", "d0", issued_at_ms=NOW - 180_000)
    assert revocation_reason(lookup, older, now_ms=NOW) == "viewer-revoked"


def test_a_session_revocation_kills_even_later_tokens_of_that_session() -> None:
    lookup = _lookup(_entry(RevocationScope.SESSION, "s1", revoked_at=NOW - 120_000))
    assert revocation_reason(lookup, TOKEN, now_ms=NOW) == "session-revoked"


def test_expired_entries_no_longer_count() -> None:
    lookup = _lookup(_entry(RevocationScope.TOKEN, "t1", expires_at=NOW))
    assert revocation_reason(lookup, TOKEN, now_ms=NOW) is None
