"""Keyed pseudonyms of viewers, sessions and samples under one epoch key (HMAC-SHA256).

A pseudonym is the first 128 bits of HMAC-SHA256(epoch key, kind || 0x00 || id), as 32
hex digits: the kind keeps a viewer and a session that share an id apart, and 128 bits
make collisions negligible while halving what every row and topic record carries.
Without the epoch key nobody can compute a pseudonym from an id or link two epochs.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from services.bridge.epochs import EpochKey
from streams.telemetry import uuid_text

PSEUDONYM_HEX = 32
# Viewer and session pseudonyms remembered per epoch: a player sends a sample every few
# seconds under the same ids, and a lookup costs a tenth of the two SHA-256 passes. The
# memory goes with the epoch's object, so a new (or destroyed) key leaves nothing behind.
MEMO_ENTRIES = 200_000

_BLOCK = 64  # SHA-256 block size: the HMAC pads are one block each


def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states primed with the HMAC inner and outer pads of key.

    Copying a primed state costs a fraction of `hmac.new`, which re-derives the pads on
    every call; the bridge computes two or three HMACs per sample.
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


class EpochPseudonyms:
    """Pseudonyms under one epoch key; `epoch` names the key in every event it marks."""

    __slots__ = ("_inner", "_memo", "_outer", "_sample_mac", "epoch")

    def __init__(self, epoch_key: EpochKey) -> None:
        if not epoch_key.key:
            raise ValueError("the epoch key must not be empty")
        self.epoch = epoch_key.epoch
        self._inner, self._outer = _pads(epoch_key.key)
        # Event ids need a keyed PRF, not HMAC-SHA256 specifically: keyed BLAKE2b is one
        # C call per sample instead of four. The personalisation keeps its outputs apart
        # from any other use of the key.
        self._sample_mac = hashlib.blake2b(
            key=hashlib.sha256(b"liveward sample ids\x00" + epoch_key.key).digest(),
            digest_size=16,
            person=b"liveward-sample",
        )
        self._memo: dict[tuple[bytes, str], str] = {}

    def _mac(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

    def _pseudonym(self, kind: bytes, subject: str) -> str:
        known = self._memo.get((kind, subject))
        if known is not None:
            return known
        pseudonym = self._mac(kind + b"\x00" + subject.encode()).hex()[:PSEUDONYM_HEX]
        if len(self._memo) >= MEMO_ENTRIES:
            self._memo.clear()
        self._memo[(kind, subject)] = pseudonym
        return pseudonym

    def viewer(self, viewer_id: str) -> str:
        return self._pseudonym(b"viewer", viewer_id)

    def session(self, session_id: str) -> str:
        return self._pseudonym(b"session", session_id)

    def sample_mac(self, session_id: str, sample_id: str) -> bytes:
        """16 bytes of keyed BLAKE2b of (session, sample id): an event id before
        `mark_uuid8` sets its version and variant bits."""
        mac = self._sample_mac.copy()
        mac.update(session_id.encode() + b"\x00" + sample_id.encode())
        return mac.digest()

    def sample_event_id_bytes(self, session_id: str, sample_id: str) -> bytes:
        """A UUID (version 8, RFC 9562) derived from the player's own sample id, as its
        16 bytes.

        Keyed BLAKE2b of (session, sample id) under a key derived from the epoch key. A
        player that resends a sample after a lost answer gets the same event_id, so the
        sinks' de-duplication on event_id removes the copy (within one epoch).
        """
        raw = bytearray(self.sample_mac(session_id, sample_id))
        mark_uuid8(raw)
        return bytes(raw)

    def sample_event_id(self, session_id: str, sample_id: str) -> str:
        """`sample_event_id_bytes` in the UUID's text form, as sinks store it."""
        return uuid_text(self.sample_event_id_bytes(session_id, sample_id))


# Byte maps setting a UUID's version (8) and variant (RFC 9562, 10xx) bits.
_VERSION_8 = bytes((b & 0x0F) | 0x80 for b in range(256))
_VARIANT_RFC = bytes((b & 0x3F) | 0x80 for b in range(256))


def mark_uuid8(ids: bytearray) -> None:
    """Make every 16 bytes of ids a version-8 UUID, in place: two byte maps over strided
    slices, whatever the count (setting bits already set changes nothing)."""
    ids[6::16] = ids[6::16].translate(_VERSION_8)
    ids[8::16] = ids[8::16].translate(_VARIANT_RFC)


def reference_mac(key: bytes, kind: str, subject: str) -> str:
    """The same pseudonym with the standard library's HMAC: the definition tests check against."""
    message = kind.encode() + b"\x00" + subject.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
