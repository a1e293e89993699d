"""Folding revocation requests into the revocation list: pure functions, no clock, no Kafka."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from streams.events import RevocationListEntry, RevocationRequested, RevocationScope


def entry_key(scope: RevocationScope, subject: str) -> str:
    """The list's key for a subject; the same text the catalog uses as the Kafka key."""
    return f"{scope}|{subject}"


def fold_request(
    current: RevocationListEntry | None,
    request: RevocationRequested,
    *,
    now_ms: int,
    event_id: str,
) -> RevocationListEntry | None:
    """The list entry after applying request, or None when the list does not change.

    A request whose tokens have all expired already changes nothing (the list stays
    bounded); replaying a request already folded in changes nothing (idempotent replay).
    An entry lives until the latest `covers_until` of the requests folded into it.
    """
    if request.covers_until <= now_ms:
        return None
    if current is None:
        return RevocationListEntry(
            event_id=event_id,
            occurred_at=request.occurred_at,
            region=request.region,
            scope=request.scope,
            subject=request.subject,
            reason=request.reason,
            revoked_at=request.occurred_at,
            expires_at=request.covers_until,
            revocation_ids=(request.revocation_id,),
        )
    if request.revocation_id in current.revocation_ids:
        return None
    return replace(
        current,
        event_id=event_id,
        occurred_at=max(current.occurred_at, request.occurred_at),
        revoked_at=min(current.revoked_at, request.occurred_at),
        expires_at=max(current.expires_at, request.covers_until),
        revocation_ids=(*current.revocation_ids, request.revocation_id),
    )


def expired_keys(entries: Iterable[tuple[str, RevocationListEntry]], *, now_ms: int) -> list[str]:
    """Keys of entries no token they cover can outlive any more: to be tombstoned."""
    return [key for key, entry in entries if entry.expires_at <= now_ms]
