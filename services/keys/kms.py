"""Region key-encryption keys (KEKs) behind a KMS-shaped interface, and a local keyring file.

`KeyEncryptionKeys` is shaped like a cloud KMS key: `wrap` (KMS Encrypt) and `unwrap`
(KMS Decrypt) with associated data (KMS "encryption context"). Whoever creates an epoch
needs `wrap` on every region's KEK; a region needs `unwrap` on its own only. A real KMS
enforces that split with permissions; the local keyring file cannot, so it is only as
strong as the file's permissions (0600 in a 0700 directory).

Wrapping is AES-256-GCM: `wrapped = nonce (12 bytes) || ciphertext || tag (16 bytes)`,
with the caller's associated data authenticated, so a copy cannot be moved to another
epoch or region, nor the epoch's fields changed, without unwrap failing.

KEK ids are `<region>.v<version>.<8 hex>`: the version orders a region's KEKs (the newest
wraps; older ones still unwrap what they wrapped) and the random tag tells apart two
keyrings of one region (a keyring lost and regenerated), so a copy wrapped by the old
one fails as `unknown-kek`, not as a puzzling authentication failure.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from liveward.private_files import exclusive_lock, write_private
from liveward.settings import Settings
from services.keys.errors import KekKeyringError, UnwrapFailed
from streams.meta import now_ms

KEYRING_FORMAT = 1
KEK_BYTES = 32
NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class WrappedSecret:
    """A secret wrapped under one KEK version: what travels, never the secret itself."""

    kek_id: str
    wrapped: bytes


class KeyEncryptionKeys(Protocol):
    """One region's KEK, as a KMS would offer it."""

    @property
    def region(self) -> str: ...

    def wrap(self, plaintext: bytes, *, associated_data: bytes) -> WrappedSecret:
        """Encrypt plaintext under the newest KEK version, authenticating associated_data."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, *, associated_data: bytes) -> bytes:
        """Decrypt a copy wrapped by `wrap`; raises `UnwrapFailed` with a reason otherwise."""
        ...

    def rotate(self) -> str:
        """Add a new KEK version that wraps from now on; older versions still unwrap."""
        ...

    def kek_ids(self) -> tuple[str, ...]:
        """Every KEK version this keyring holds, oldest first (ids only)."""
        ...


@dataclass(frozen=True, slots=True)
class Kek:
    """One KEK version."""

    kek_id: str
    version: int
    created_at: int
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class KekRing:
    """A region's KEK versions, oldest first; the last one wraps."""

    region: str
    keks: tuple[Kek, ...]

    @classmethod
    def generate(cls, region: str, *, created_at: int) -> KekRing:
        return cls(region, ()).with_new_version(created_at=created_at)

    @property
    def primary(self) -> Kek:
        return self.keks[-1]

    def with_new_version(self, *, created_at: int) -> KekRing:
        version = self.keks[-1].version + 1 if self.keks else 1
        kek = Kek(
            kek_id=f"{self.region}.v{version}.{secrets.token_hex(4)}",
            version=version,
            created_at=created_at,
            key=secrets.token_bytes(KEK_BYTES),
        )
        return KekRing(self.region, (*self.keks, kek))

    def find(self, kek_id: str) -> Kek | None:
        return next((k for k in self.keks if k.kek_id == kek_id), None)

    def wrap(self, plaintext: bytes, associated_data: bytes) -> WrappedSecret:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.primary.key).encrypt(nonce, plaintext, associated_data)
        return WrappedSecret(self.primary.kek_id, nonce + sealed)

    def unwrap(self, kek_id: str, wrapped: bytes, associated_data: bytes) -> bytes:
        kek = self.find(kek_id)
        if kek is None:
            if kek_region(kek_id) != self.region:
                raise UnwrapFailed(
                    f"{kek_id!r} is not a KEK of region {self.region}", reason="wrong-region-kek"
                )
            raise UnwrapFailed(
                f"KEK {kek_id!r} is not in the keyring of {self.region}", reason="unknown-kek"
            )
        try:
            return AESGCM(kek.key).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], associated_data
            )
        except (InvalidTag, ValueError) as exc:
            raise UnwrapFailed(
                f"copy wrapped by {kek_id!r} does not authenticate (wrong key or tampered)",
                reason="unwrap-failed",
            ) from exc


def kek_region(kek_id: str) -> str:
    """The region a KEK id names (`<region>.v<n>.<tag>`); empty when it is malformed."""
    parts = kek_id.rsplit(".", 2)
    return parts[0] if len(parts) == 3 and parts[1].startswith("v") else ""


def kek_ring_to_json(ring: KekRing) -> str:
    return json.dumps(
        {
            "format": KEYRING_FORMAT,
            "region": ring.region,
            "keks": [
                {
                    "kek_id": k.kek_id,
                    "version": k.version,
                    "created_at": k.created_at,
                    "key": base64.urlsafe_b64encode(k.key).decode(),
                }
                for k in ring.keks
            ],
        },
        indent=2,
    )


def kek_ring_from_json(text: str, region: str) -> KekRing:
    """Parse a keyring file for `region`; anything off raises `KekKeyringError`."""
    try:
        document = json.loads(text)
        if document.get("format") != KEYRING_FORMAT:
            raise KekKeyringError(f"KEK keyring format {document.get('format')!r} unsupported")
        if document["region"] != region:
            raise KekKeyringError(
                f"the KEK keyring holds region {document['region']!r}, not {region!r}"
            )
        keks = tuple(
            Kek(
                kek_id=str(item["kek_id"]),
                version=int(item["version"]),
                created_at=int(item["created_at"]),
                key=base64.urlsafe_b64decode(item["key"]),
            )
            for item in document["keks"]
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KekKeyringError(f"KEK keyring is not readable: {exc}") from exc
    if not keks or any(len(k.key) != KEK_BYTES or kek_region(k.kek_id) != region for k in keks):
        raise KekKeyringError(f"KEK keyring of {region} holds no usable {KEK_BYTES}-byte KEK")
    return KekRing(region, tuple(sorted(keks, key=lambda k: k.version)))


class InMemoryKeks:
    """A region's KEKs in memory (tests, tools); same contract as the keyring file."""

    def __init__(self, region: str, *, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._ring = KekRing.generate(region, created_at=clock())
        self._lock = threading.Lock()

    @property
    def region(self) -> str:
        return self._ring.region

    def wrap(self, plaintext: bytes, *, associated_data: bytes) -> WrappedSecret:
        return self._ring.wrap(plaintext, associated_data)

    def unwrap(self, kek_id: str, wrapped: bytes, *, associated_data: bytes) -> bytes:
        return self._ring.unwrap(kek_id, wrapped, associated_data)

    def rotate(self) -> str:
        with self._lock:
            self._ring = self._ring.with_new_version(created_at=self._clock())
            return self._ring.primary.kek_id

    def kek_ids(self) -> tuple[str, ...]:
        return tuple(k.kek_id for k in self._ring.keks)


class KeyringFileKeks:
    """A region's KEKs in a JSON keyring file, generated on first use.

    The file holds the KEKs in the clear, so it is created 0600 in a 0700 directory and a
    file that others can read is refused. Writers hold an exclusive `flock` on a sibling
    lock file and replace the file by an atomic rename, so concurrent processes create
    one keyring, never two, and readers always see a whole one. A process re-reads the
    file when it meets a KEK id it does not know (another process may have rotated).
    """

    def __init__(self, path: Path, region: str, *, clock: Callable[[], int] = now_ms) -> None:
        self.path = path
        self._region = region
        self._clock = clock
        self._lock_path = path.with_name(path.name + ".lock")
        self._ring: KekRing | None = None
        self._mutex = threading.Lock()

    @property
    def region(self) -> str:
        return self._region

    def wrap(self, plaintext: bytes, *, associated_data: bytes) -> WrappedSecret:
        return self._current().wrap(plaintext, associated_data)

    def unwrap(self, kek_id: str, wrapped: bytes, *, associated_data: bytes) -> bytes:
        ring = self._current()
        if ring.find(kek_id) is None and kek_region(kek_id) == self._region:
            ring = self._reload()
        return ring.unwrap(kek_id, wrapped, associated_data)

    def rotate(self) -> str:
        with self._mutex, self._locked():
            ring = self._read() or KekRing(self._region, ())
            ring = ring.with_new_version(created_at=self._clock())
            self._write(ring)
            self._ring = ring
            return ring.primary.kek_id

    def kek_ids(self) -> tuple[str, ...]:
        return tuple(k.kek_id for k in self._current().keks)

    def _current(self) -> KekRing:
        ring = self._ring
        return ring if ring is not None else self._reload()

    def _reload(self) -> KekRing:
        with self._mutex:
            ring = self._read()
            if ring is None:
                with self._locked():
                    ring = self._read()
                    if ring is None:
                        ring = KekRing.generate(self._region, created_at=self._clock())
                        self._write(ring)
            self._ring = ring
            return ring

    def _read(self) -> KekRing | None:
        try:
            mode = self.path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KekKeyringError(
                    f"{self.path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                    "it holds KEKs in the clear: chmod 600 it"
                )
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KekKeyringError(f"cannot read {self.path}: {exc}") from exc
        return kek_ring_from_json(text, self._region)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            with exclusive_lock(self._lock_path):
                yield
        except OSError as exc:
            raise KekKeyringError(f"cannot lock {self._lock_path}: {exc}") from exc

    def _write(self, ring: KekRing) -> None:
        try:
            write_private(self.path, kek_ring_to_json(ring))
        except OSError as exc:
            raise KekKeyringError(f"cannot write {self.path}: {exc}") from exc


def keyring_path(settings: Settings, region: str) -> Path:
    """Where region's local KEK keyring lives: `<state_dir>/keys/kek-<region>.json`."""
    return settings.state_dir / "keys" / f"kek-{region}.json"


def local_keks(settings: Settings, region: str) -> KeyringFileKeks:
    """Region's KEKs from its local keyring file."""
    return KeyringFileKeks(keyring_path(settings, region), region)


def local_keks_of_every_region(settings: Settings) -> dict[str, KeyEncryptionKeys]:
    """Every configured region's KEKs (`settings.regions`, plus `settings.region`)."""
    regions = dict.fromkeys((*settings.regions, settings.region))
    return {region: local_keks(settings, region) for region in regions}
