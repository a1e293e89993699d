"""Epoch master keys: generated, wrapped under every region's KEK into a `KeyEpoch`, unwrapped.

Each region's copy is wrapped with associated data that binds the copy to the epoch's
id, its region and every field that decides which periods it governs (`started_at`,
`occurred_at` — the tie-break between epochs starting together —, `period_seconds`,
`emergency`): whoever can write to `keys.epochs` but holds no KEK can neither move a copy
to another epoch or region nor change when an epoch takes effect without every region
refusing it (`unwrap-failed`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime

from services.keys.derivation import MASTER_KEY_BYTES
from services.keys.errors import KeyHierarchyError, UnwrapFailed
from services.keys.kms import KeyEncryptionKeys
from streams.events import KeyEpoch, WrappedKey

WRAP_CONTEXT_LABEL = "liveward key epoch v1"


def new_master_key() -> bytes:
    """32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(MASTER_KEY_BYTES)


def new_epoch_id(started_at_ms: int) -> str:
    """A readable, unique epoch id: when it takes effect (UTC) and 8 random hex digits."""
    stamp = datetime.fromtimestamp(started_at_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(4)}"


def wrap_context(
    *,
    epoch_id: str,
    region: str,
    started_at: int,
    created_at: int,
    period_seconds: int,
    emergency: bool,
) -> bytes:
    """The associated data a region's copy is wrapped with (compact JSON array, UTF-8)."""
    fields = [
        WRAP_CONTEXT_LABEL,
        epoch_id,
        region,
        started_at,
        created_at,
        period_seconds,
        emergency,
    ]
    return json.dumps(fields, separators=(",", ":")).encode()


def build_key_epoch(
    *,
    master_key: bytes,
    epoch_id: str,
    started_at: int,
    period_seconds: int,
    emergency: bool,
    keks: Mapping[str, KeyEncryptionKeys],
    emitted_by: str,
    event_id: str,
    occurred_at: int,
) -> KeyEpoch:
    """The `KeyEpoch` event: one copy of master_key per region in keks, never the key itself.

    `occurred_at` is the epoch's creation time; a re-wrapped epoch keeps it.
    """
    if len(master_key) != MASTER_KEY_BYTES:
        raise KeyHierarchyError(
            f"an epoch master key is {MASTER_KEY_BYTES} bytes", reason="bad-master-key"
        )
    if not keks:
        raise KeyHierarchyError("an epoch needs at least one region", reason="no-regions")
    copies = []
    for region in sorted(keks):
        context = wrap_context(
            epoch_id=epoch_id,
            region=region,
            started_at=started_at,
            created_at=occurred_at,
            period_seconds=period_seconds,
            emergency=emergency,
        )
        copy = keks[region].wrap(master_key, associated_data=context)
        copies.append(WrappedKey(region=region, kek_id=copy.kek_id, wrapped_key=copy.wrapped))
    return KeyEpoch(
        event_id=event_id,
        occurred_at=occurred_at,
        region=emitted_by,
        epoch_id=epoch_id,
        started_at=started_at,
        period_seconds=period_seconds,
        emergency=emergency,
        wrapped_keys=tuple(copies),
    )


def unwrap_master_key(epoch: KeyEpoch, keks: KeyEncryptionKeys) -> bytes:
    """This region's copy of the epoch master key, unwrapped; `UnwrapFailed` with a reason."""
    copy = next((c for c in epoch.wrapped_keys if c.region == keks.region), None)
    if copy is None:
        raise UnwrapFailed(
            f"epoch {epoch.epoch_id} carries no copy for region {keks.region}",
            reason="no-copy-for-region",
        )
    context = wrap_context(
        epoch_id=epoch.epoch_id,
        region=keks.region,
        started_at=epoch.started_at,
        created_at=epoch.occurred_at,
        period_seconds=epoch.period_seconds,
        emergency=epoch.emergency,
    )
    master = keks.unwrap(copy.kek_id, copy.wrapped_key, associated_data=context)
    if len(master) != MASTER_KEY_BYTES:
        raise UnwrapFailed(
            f"epoch {epoch.epoch_id} unwraps to {len(master)} bytes", reason="unwrap-failed"
        )
    return master
