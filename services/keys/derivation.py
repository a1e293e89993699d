"""Content keys and key ids derived from an epoch master key with HKDF-SHA256. Pure.

The specification, for other implementations (RFC 5869 HKDF with SHA-256):

    PRK         = HKDF-Extract(salt = "liveward/keys/v1", IKM = epoch master key, 32 bytes)
    info(label) = label || 0x00
                  || uint16_be(len(epoch_id))   || epoch_id    (UTF-8)
                  || uint16_be(len(content_id)) || content_id  (UTF-8)
                  || uint64_be(period)
    content key = HKDF-Expand(PRK, info("liveward content key v1"), 16)   -> AES-128 key
    key id      = HKDF-Expand(PRK, info("liveward key id v1"), 16)        -> shown as hex

Length prefixes keep the encoding injective (no content id can imitate another's period).
Both outputs are independent HKDF outputs under different labels, so a key id says
nothing about its key, and one leaked content key says nothing about any other period,
content or the master (the blast radius of a content key is one period of one stream).
The key id is derived from the master too, so only holders of the master can tell which
(content, period) a key id names.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field

from services.keys.errors import KeyHierarchyError

SALT = b"liveward/keys/v1"
CONTENT_KEY_LABEL = b"liveward content key v1"
KEY_ID_LABEL = b"liveward key id v1"
MASTER_KEY_BYTES = 32
CONTENT_KEY_BYTES = 16
KEY_ID_BYTES = 16
MAX_ID_BYTES = 1024
_HASH = "sha256"
_HASH_BYTES = 32


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with SHA-256."""
    return hmac.digest(salt, ikm, _HASH)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-256, for up to 255 * 32 bytes."""
    if not 0 < length <= 255 * _HASH_BYTES:
        raise KeyHierarchyError(f"HKDF cannot expand to {length} bytes", reason="bad-length")
    blocks = []
    block = b""
    for counter in range(1, -(-length // _HASH_BYTES) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), _HASH)
        blocks.append(block)
    return b"".join(blocks)[:length]


def derivation_info(label: bytes, epoch_id: str, content_id: str, period: int) -> bytes:
    """The HKDF info for (label, epoch, content, period); see the module docstring."""
    epoch = _id_bytes(epoch_id, "epoch id", "bad-epoch-id")
    content = _id_bytes(content_id, "content id", "bad-content-id")
    if not 0 <= period < 2**63:
        raise KeyHierarchyError(f"no key period {period}", reason="bad-period")
    return b"".join(
        (
            label,
            b"\x00",
            struct.pack(">H", len(epoch)),
            epoch,
            struct.pack(">H", len(content)),
            content,
            struct.pack(">Q", period),
        )
    )


def _id_bytes(value: str, what: str, reason: str) -> bytes:
    raw = value.encode()
    if not raw or len(raw) > MAX_ID_BYTES:
        raise KeyHierarchyError(f"{what} must be 1..{MAX_ID_BYTES} bytes", reason=reason)
    return raw


@dataclass(frozen=True, slots=True)
class EpochSecret:
    """An epoch's HKDF pseudorandom key: derives every content key and key id of the epoch.

    Holds the PRK rather than the master so each derivation costs one HMAC; the PRK is as
    secret as the master and is never shown by `repr`.
    """

    epoch_id: str
    prk: bytes = field(repr=False)

    @classmethod
    def from_master(cls, epoch_id: str, master_key: bytes) -> EpochSecret:
        if len(master_key) != MASTER_KEY_BYTES:
            raise KeyHierarchyError(
                f"an epoch master key is {MASTER_KEY_BYTES} bytes, not {len(master_key)}",
                reason="bad-master-key",
            )
        _id_bytes(epoch_id, "epoch id", "bad-epoch-id")
        return cls(epoch_id, hkdf_extract(SALT, master_key))

    def content_key(self, content_id: str, period: int) -> bytes:
        """The 16-byte AES-128 key of (content, period) in this epoch."""
        info = derivation_info(CONTENT_KEY_LABEL, self.epoch_id, content_id, period)
        return hkdf_expand(self.prk, info, CONTENT_KEY_BYTES)

    def key_id(self, content_id: str, period: int) -> bytes:
        """The 16-byte key id of (content, period) in this epoch."""
        info = derivation_info(KEY_ID_LABEL, self.epoch_id, content_id, period)
        return hkdf_expand(self.prk, info, KEY_ID_BYTES)


def content_key(master_key: bytes, epoch_id: str, content_id: str, period: int) -> bytes:
    """The content key of (content, period) under an epoch master key."""
    return EpochSecret.from_master(epoch_id, master_key).content_key(content_id, period)


def key_id(master_key: bytes, epoch_id: str, content_id: str, period: int) -> bytes:
    """The key id of (content, period) under an epoch master key."""
    return EpochSecret.from_master(epoch_id, master_key).key_id(content_id, period)


def parse_key_id(text: str) -> bytes:
    """A key id from its hex form (as in `KeyRotated.key_id`); `bad-key-id` otherwise."""
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise KeyHierarchyError(f"key id {text[:40]!r} is not hex", reason="bad-key-id") from exc
    if len(raw) != KEY_ID_BYTES:
        raise KeyHierarchyError(f"a key id is {KEY_ID_BYTES} bytes", reason="bad-key-id")
    return raw
