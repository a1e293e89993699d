"""Ed25519 signing keys that rotate with overlap, kept in a keyring file shared by processes.

The schedule is pure (`rotate`, given the time); `KeyringFile` persists a keyring with a
file lock and an atomic rename; `SigningKeys` is what a service holds: the keyring in
memory, rotated and re-read when the schedule says so.

A key signs during `[not_before, signs_until)` (one rotation period), then verifies for
one token lifetime plus the clock-skew allowance more, then is retired: its kid is
remembered (so a token signed by it fails as `kid-retired`, not `kid-unknown`) but its
key material is dropped. The next key is created and published one rotation period
before it signs, so a verifier that caches the JWKS for less than that never meets a
token whose kid it has not seen.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from liveward.private_files import exclusive_lock, write_private
from services.auth.errors import KeyringError

KEYRING_FORMAT = 1
# How long a retired kid is remembered; after that a token naming it is `kid-unknown`.
RETIRED_KIDS_KEPT_S = 7 * 24 * 3600
# A process re-reads the keyring file at most this often when it meets an unknown kid,
# so a flood of forged kids cannot turn into a flood of file reads.
UNKNOWN_KID_RELOAD_S = 1.0


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_id(public_key: bytes) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_key)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 key pair and its windows (epoch seconds)."""

    kid: str
    private_key: bytes = field(repr=False)  # the 32-byte raw seed
    public_key: bytes
    not_before: int
    signs_until: int
    verifies_until: int

    @classmethod
    def generate(cls, *, not_before: int, schedule: RotationSchedule) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = _raw_public(private)
        signs_until, verifies_until = schedule.windows(not_before)
        return cls(key_id(public), seed, public, not_before, signs_until, verifies_until)

    def signer(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.private_key)

    def public_jwk(self) -> dict[str, str]:
        """The public half as an OKP JWK (RFC 8037), as published in the JWKS."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(self.public_key),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }


@dataclass(frozen=True, slots=True)
class RotationSchedule:
    """How long keys sign and verify; all in seconds."""

    rotation_s: int
    token_lifetime_s: int
    clock_skew_s: int

    def __post_init__(self) -> None:
        if self.rotation_s <= 0 or self.token_lifetime_s <= 0 or self.clock_skew_s < 0:
            raise KeyringError("rotation and token lifetime must be positive")

    def windows(self, not_before: int) -> tuple[int, int]:
        """(signs_until, verifies_until) of a key that starts signing at not_before."""
        signs_until = not_before + self.rotation_s
        # The last token it signs expires one lifetime later; allow the skew on top.
        return signs_until, signs_until + self.token_lifetime_s + self.clock_skew_s


@dataclass(frozen=True, slots=True)
class Keyring:
    """Live keys (ordered by not_before) and the kids retired, with when they retired."""

    keys: tuple[SigningKey, ...] = ()
    retired: tuple[tuple[str, int], ...] = ()

    def signing_key(self, now: float) -> SigningKey | None:
        """The key that signs at now: the latest one whose signing window holds now."""
        current = [k for k in self.keys if k.not_before <= now < k.signs_until]
        return max(current, key=lambda k: k.not_before) if current else None

    def verification_keys(self, now: float) -> tuple[SigningKey, ...]:
        """Keys a token may be signed by at now: every live key, the pre-published one too."""
        return tuple(k for k in self.keys if now < k.verifies_until)

    def retired_kids(self) -> frozenset[str]:
        return frozenset(kid for kid, _ in self.retired)

    def next_change_at(self) -> float:
        """The earliest time `rotate` would change this keyring (now, if it is empty)."""
        if not self.keys:
            return float("-inf")
        return float(
            min(
                *(k.verifies_until for k in self.keys),
                # When the newest key starts signing, the one after it must be published.
                max(k.not_before for k in self.keys),
                *(at + RETIRED_KIDS_KEPT_S for _, at in self.retired),
            )
        )


KeyFactory = Callable[[int], SigningKey]


def rotate(ring: Keyring, now: int, new_key: KeyFactory) -> Keyring:
    """The keyring at now: expired keys retired, a signing key and the next one present.

    Pure apart from `new_key(not_before)`, which makes a key pair (the randomness).
    Returns `ring` itself when nothing changes, so callers can skip a write.
    """
    live = tuple(k for k in ring.keys if now < k.verifies_until)
    newly_retired = tuple((k.kid, k.verifies_until) for k in ring.keys if now >= k.verifies_until)
    retired = tuple(
        (kid, at) for kid, at in ring.retired + newly_retired if now < at + RETIRED_KIDS_KEPT_S
    )
    keys = list(live)
    active = Keyring(tuple(keys)).signing_key(now)
    if active is None:
        # First start, or nothing signed for longer than a rotation: a fresh chain from now.
        active = new_key(now)
        keys.append(active)
    if not any(k.not_before >= active.signs_until for k in keys):
        keys.append(new_key(active.signs_until))
    result = Keyring(tuple(sorted(keys, key=lambda k: k.not_before)), retired)
    return ring if result == ring else result


def jwks_document(ring: Keyring, now: float) -> dict[str, list[dict[str, str]]]:
    """The JWKS to publish at now: every key a valid token may be signed by."""
    return {"keys": [k.public_jwk() for k in ring.verification_keys(now)]}


def keyring_to_json(ring: Keyring) -> str:
    return json.dumps(
        {
            "format": KEYRING_FORMAT,
            "keys": [
                {
                    "kid": k.kid,
                    "d": b64url(k.private_key),
                    "x": b64url(k.public_key),
                    "not_before": k.not_before,
                    "signs_until": k.signs_until,
                    "verifies_until": k.verifies_until,
                }
                for k in ring.keys
            ],
            "retired": [{"kid": kid, "retired_at": at} for kid, at in ring.retired],
        },
        indent=2,
    )


def keyring_from_json(text: str) -> Keyring:
    """Parse a keyring file; anything off (syntax, fields, a key not matching its kid) raises."""
    try:
        document = json.loads(text)
        if document.get("format") != KEYRING_FORMAT:
            raise KeyringError(f"keyring format {document.get('format')!r} is not supported")
        keys = []
        for item in document["keys"]:
            seed = b64url_decode(item["d"])
            public = _raw_public(Ed25519PrivateKey.from_private_bytes(seed))
            if b64url(public) != item["x"] or key_id(public) != item["kid"]:
                raise KeyringError(f"keyring entry {item['kid']!r} does not match its key")
            keys.append(
                SigningKey(
                    kid=item["kid"],
                    private_key=seed,
                    public_key=public,
                    not_before=int(item["not_before"]),
                    signs_until=int(item["signs_until"]),
                    verifies_until=int(item["verifies_until"]),
                )
            )
        retired = tuple((str(r["kid"]), int(r["retired_at"])) for r in document["retired"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyringError(f"keyring is not readable: {exc}") from exc
    return Keyring(tuple(sorted(keys, key=lambda k: k.not_before)), retired)


class KeyringStore(Protocol):
    """Where a keyring lives: `update` applies a change under mutual exclusion."""

    def load(self) -> Keyring: ...

    def update(self, change: Callable[[Keyring], Keyring]) -> Keyring: ...


class InMemoryKeyringStore:
    """A keyring store for one process (tests, tools); same contract as the file."""

    def __init__(self, ring: Keyring | None = None) -> None:
        self._ring = ring or Keyring()
        self._lock = threading.Lock()

    def load(self) -> Keyring:
        return self._ring

    def update(self, change: Callable[[Keyring], Keyring]) -> Keyring:
        with self._lock:
            self._ring = change(self._ring)
            return self._ring


class KeyringFile:
    """A keyring in a JSON file that several processes on one machine share.

    Writers hold an exclusive `flock` on a sibling lock file while they read, change and
    write; the write goes to a temporary file that is fsynced and renamed over the old
    one, so readers (who take no lock) always see a whole keyring. The file holds private
    keys: it is created with mode 0600.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def load(self) -> Keyring:
        try:
            return keyring_from_json(self.path.read_text())
        except FileNotFoundError:
            return Keyring()
        except OSError as exc:
            raise KeyringError(f"cannot read {self.path}: {exc}") from exc

    def update(self, change: Callable[[Keyring], Keyring]) -> Keyring:
        with self._locked():
            current = self.load()
            changed = change(current)
            if changed != current:
                self._write(changed)
            return changed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with exclusive_lock(self._lock_path):
                yield
        except OSError as exc:
            raise KeyringError(f"cannot lock {self._lock_path}: {exc}") from exc

    def _write(self, ring: Keyring) -> None:
        try:
            write_private(self.path, keyring_to_json(ring))
        except OSError as exc:
            raise KeyringError(f"cannot write {self.path}: {exc}") from exc


class SigningKeys:
    """The keyring a service signs and verifies with, rotated on schedule.

    Rotation happens under the store's lock, so among processes sharing a keyring file
    exactly one creates each new key; the others pick it up when they reach the same
    point of the schedule, or when a token names a kid they do not know yet.
    """

    def __init__(
        self,
        store: KeyringStore,
        schedule: RotationSchedule,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._schedule = schedule
        self._clock = clock
        self._lock = threading.Lock()
        self._ring = store.load()
        self._last_reload = float("-inf")
        self._signers: dict[str, Ed25519PrivateKey] = {}

    def _new_key(self, not_before: int) -> SigningKey:
        return SigningKey.generate(not_before=not_before, schedule=self._schedule)

    def current(self) -> Keyring:
        """The keyring now, rotating it first when the schedule says so."""
        now = self._clock()
        with self._lock:
            if now >= self._ring.next_change_at():
                self._ring = self._store.update(lambda ring: rotate(ring, int(now), self._new_key))
            return self._ring

    def reload(self) -> bool:
        """Re-read the store (rate-limited); True if it was read. For unknown kids."""
        now = self._clock()
        with self._lock:
            if now - self._last_reload < UNKNOWN_KID_RELOAD_S:
                return False
            self._last_reload = now
            self._ring = self._store.load()
        self.current()
        return True

    def signing_key(self) -> tuple[SigningKey, Ed25519PrivateKey]:
        """The key to sign with now, and its private key object (cached per kid)."""
        ring = self.current()
        key = ring.signing_key(self._clock())
        if key is None:
            raise KeyringError("no signing key covers the current time")
        with self._lock:
            signer = self._signers.get(key.kid)
            if signer is None:
                live = {k.kid for k in ring.keys}
                self._signers = {kid: s for kid, s in self._signers.items() if kid in live}
                signer = self._signers[key.kid] = key.signer()
        return key, signer

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return jwks_document(self.current(), self._clock())

    def retired_kids(self) -> frozenset[str]:
        return self.current().retired_kids()


def public_keys(jwks: Mapping[str, Any]) -> dict[str, bytes]:
    """kid -> raw Ed25519 public key from a JWKS; entries that are not OKP/Ed25519 are skipped."""
    keys: dict[str, bytes] = {}
    for jwk in jwks.get("keys", ()):
        if not isinstance(jwk, Mapping):
            continue
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "kid" not in jwk:
            continue
        with contextlib.suppress(ValueError, TypeError):
            raw = b64url_decode(str(jwk["x"]))
            if len(raw) == 32:
                keys[str(jwk["kid"])] = raw
    return keys
