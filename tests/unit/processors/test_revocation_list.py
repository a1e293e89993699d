"""Folding revocation requests into the list: merging, idempotent replay, expiry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processors.revocation_list import entry_key, expired_keys, fold_request
from streams.events import RevocationListEntry, RevocationRequested, RevocationScope

NOW = 1_700_000_000_000


def _request(rid: str = "r1", *, at: int = NOW, until: int = NOW + 600_000) -> RevocationRequested:
    return RevocationRequested(
        event_id=f"e-{rid}",
        occurred_at=at,
        region="eu-west",
        revocation_id=rid,
        scope=RevocationScope.SESSION,
        subject="session-9",
        reason="theft-suspected",
        requested_by="operator",
        covers_until=until,
    )


def test_first_request_creates_an_entry() -> None:
    entry = fold_request(None, _request(), now_ms=NOW, event_id="x")
    assert entry is not None
    assert (entry.scope, entry.subject, entry.expires_at) == (
        RevocationScope.SESSION,
        "session-9",
        NOW + 600_000,
    )
    assert entry.revocation_ids == ("r1",)


def test_a_request_for_tokens_already_expired_changes_nothing() -> None:
    assert fold_request(None, _request(until=NOW), now_ms=NOW, event_id="x") is None


def test_replaying_the_same_request_changes_nothing() -> None:
    entry = fold_request(None, _request(), now_ms=NOW, event_id="x")
    assert fold_request(entry, _request(), now_ms=NOW + 1, event_id="y") is None


def test_a_second_request_extends_the_entry_and_keeps_the_first_revocation_time() -> None:
    first = fold_request(None, _request("r1", at=NOW), now_ms=NOW, event_id="x")
    second = fold_request(
        first, _request("r2", at=NOW + 5, until=NOW + 900_000), now_ms=NOW + 5, event_id="y"
    )
    assert second is not None
    assert second.revoked_at == NOW
    assert second.expires_at == NOW + 900_000
    assert second.revocation_ids == ("r1", "r2")


def test_entries_expire_when_their_tokens_would_have() -> None:
    entry = fold_request(None, _request(until=NOW + 10), now_ms=NOW, event_id="x")
    assert entry is not None
    key = entry_key(entry.scope, entry.subject)
    assert expired_keys([(key, entry)], now_ms=NOW + 9) == []
    assert expired_keys([(key, entry)], now_ms=NOW + 10) == [key]


def test_entry_key_matches_the_catalog_key() -> None:
    from streams.catalog import CATALOG

    entry = fold_request(None, _request(), now_ms=NOW, event_id="x")
    assert entry is not None
    spec = CATALOG["auth.revocation-list"]
    assert spec.key_of(entry).decode() == entry_key(entry.scope, entry.subject)
    assert CATALOG["auth.revocations"].key_of(_request()).decode() == "SESSION|session-9"


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(1, 10_000)), max_size=30))
def test_folding_is_order_independent_in_what_it_keeps(requests: list[tuple[str, int]]) -> None:
    """Whatever order requests arrive in, the entry covers the union until the latest expiry."""

    def fold(order: list[tuple[str, int]]) -> RevocationListEntry | None:
        entry = None
        for rid, ttl in order:
            entry = (
                fold_request(entry, _request(rid, until=NOW + ttl), now_ms=NOW, event_id="e")
                or entry
            )
        return entry

    forward, backward = fold(requests), fold(list(reversed(requests)))
    if not requests:
        assert forward is None and backward is None
        return
    assert forward is not None and backward is not None
    assert set(forward.revocation_ids) == set(backward.revocation_ids)
    first_seen: dict[str, int] = {}
    for rid, ttl in requests:
        first_seen.setdefault(rid, ttl)
    # A replayed id is ignored, so the expiry is the max over each id's first appearance.
    assert forward.expires_at == NOW + max(first_seen.values())
