"""Signed checkpoints: a C2SP tlog-checkpoint body in a C2SP signed note, signed with Ed25519.

A checkpoint commits the log to its size and root hash at a time:

    liveward/license-log/eu-west            origin: names the log (and the signing key)
    1024                                    tree size, decimal
    XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=   RFC 6962 root hash, base64
    time 1718000000000                      extension line: when it was sealed, epoch ms

    — liveward/license-log/eu-west AbCdEf...   signature line: em dash, key name,
                                               base64(4-byte key id ‖ 64-byte Ed25519 signature)

The signature covers the body text including its final newline. The key id is the first
four bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key), as in Go's
`golang.org/x/mod/sumdb/note`, so standard note and checkpoint tooling can read ours.
Pure functions: the keys come in as arguments, the time as a number.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sinks.worm.errors import CheckpointError
from sinks.worm.merkle import HASH_SIZE

SIGNATURE_PREFIX = "\u2014 "
ED25519_ALGORITHM = b"\x01"
TIME_EXTENSION = "time "
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log's size and root at a moment, as signed."""

    origin: str
    size: int
    root: bytes
    timestamp_ms: int

    def body(self) -> str:
        """The note text the signature covers."""
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\n{TIME_EXTENSION}{self.timestamp_ms}\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        """Read a checkpoint body; CheckpointError(reason=malformed-checkpoint) if it is not one."""
        if not text.endswith("\n"):
            raise _malformed("the body does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 4:
            raise _malformed(f"{len(lines)} lines, a checkpoint has origin, size, root and time")
        origin, size, root, *extensions = lines
        if not origin or origin != origin.strip():
            raise _malformed("empty origin or surrounding spaces")
        if not _DECIMAL.fullmatch(size):
            raise _malformed(f"tree size {size!r} is not a decimal number")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except binascii.Error as exc:
            raise _malformed(f"root {root!r} is not base64") from exc
        if len(root_hash) != HASH_SIZE:
            raise _malformed(f"root is {len(root_hash)} bytes, not {HASH_SIZE}")
        times = [line for line in extensions if line.startswith(TIME_EXTENSION)]
        if len(times) != 1 or not _DECIMAL.fullmatch(times[0][len(TIME_EXTENSION) :]):
            raise _malformed("exactly one 'time <epoch ms>' extension line is required")
        if any(not line for line in extensions):
            raise _malformed("empty extension line")
        return cls(origin, int(size), root_hash, int(times[0][len(TIME_EXTENSION) :]))


def _malformed(detail: str) -> CheckpointError:
    return CheckpointError(f"malformed checkpoint: {detail}", reason="malformed-checkpoint")


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte id a signature line names its key by (C2SP signed-note, Ed25519)."""
    material = name.encode() + b"\n" + ED25519_ALGORITHM + raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The C2SP verifier key string `<name>+<key id hex>+<base64(0x01 ‖ key)>`."""
    encoded = base64.b64encode(ED25519_ALGORITHM + raw_public_key(public_key)).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def parse_verifier_key(vkey: str) -> tuple[str, Ed25519PublicKey]:
    """(name, public key) from a C2SP verifier key; CheckpointError(reason=bad-key) if malformed."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise CheckpointError("a verifier key is name+keyid+key", reason="bad-key")
    name, hex_id, encoded = parts
    try:
        material = base64.b64decode(encoded, validate=True)
        wanted_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(f"verifier key does not decode: {exc}", reason="bad-key") from exc
    if len(material) != 33 or material[:1] != ED25519_ALGORITHM:
        raise CheckpointError("verifier key is not an Ed25519 key", reason="bad-key")
    public_key = Ed25519PublicKey.from_public_bytes(material[1:])
    if key_id(name, public_key) != wanted_id:
        raise CheckpointError("verifier key id does not match its key", reason="bad-key")
    return name, public_key


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> str:
    """The signed note for checkpoint, signed under the name of its origin."""
    body = checkpoint.body()
    # Round-trip the body so a checkpoint that would not parse back is never signed.
    Checkpoint.parse_body(body)
    name = checkpoint.origin
    signature = private_key.sign(body.encode())
    line = base64.b64encode(key_id(name, private_key.public_key()) + signature).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{name} {line}\n"


def open_note(note: str, public_key: Ed25519PublicKey, name: str) -> str:
    """The text of a signed note if `name`'s key signed it; CheckpointError otherwise.

    Reasons: malformed-note, unsigned (no signature by this key), bad-signature.
    """
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointError(
            "not a signed note: no blank line before the signatures", reason="malformed-note"
        )
    text, signature_block = note[: split + 1], note[split + 2 : -1]
    wanted_id = key_id(name, public_key)
    for line in signature_block.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError(f"not a signature line: {line[:40]!r}", reason="malformed-note")
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("signature is not base64", reason="malformed-note") from exc
        if signer != name or blob[:4] != wanted_id:
            continue  # another key's signature (a witness, say): not ours to judge
        try:
            public_key.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            raise CheckpointError(
                f"signature by {name} does not match the note text", reason="bad-signature"
            ) from exc
        return text
    raise CheckpointError(f"no signature by {name} with key {wanted_id.hex()}", reason="unsigned")


def open_checkpoint(
    note: str, public_key: Ed25519PublicKey, *, origin: str | None = None
) -> Checkpoint:
    """The checkpoint in a signed note, once its signature by the log's key is checked.

    The key name is the checkpoint's origin; pass `origin` to also insist on which log.
    """
    first_line = note.split("\n", 1)[0]
    if origin is not None and first_line != origin:
        raise CheckpointError(
            f"checkpoint is for {first_line!r}, not {origin!r}", reason="origin-mismatch"
        )
    return Checkpoint.parse_body(open_note(note, public_key, first_line))
