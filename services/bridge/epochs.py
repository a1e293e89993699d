"""Pseudonym epoch keys: one random key per epoch, destroyed to make an epoch unlinkable.

Each epoch (a UTC day by default) gets its own random 32-byte key, not one derived from a
long-lived secret: destroying the stored key is then enough to make every pseudonym of
that epoch unlinkable to a viewer for good (crypto-shredding), because nothing left can
recompute it. A destroyed epoch is remembered as a tombstone so no bridge ever creates a
new key under that name; if the *current* epoch is destroyed, the bridge moves on to a
fresh generation of it (`2024-05-01~2`) instead of refusing samples until midnight.

Two implementations share one contract: `KeyringFile` (a JSON file every bridge on the
host shares, written atomically under a lock) and `InMemoryKeyring` for tests.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from services.bridge.errors import EpochDestroyed, KeyStoreError

KEY_BYTES = 32
DAY_S = 86_400
# A destroyed current epoch moves to `<label>~2`, `<label>~3`, ...; never past this.
MAX_GENERATIONS = 100


def epoch_label(now_ms: int, epoch_s: int) -> str:
    """The name of the epoch containing now_ms: epochs are UTC-aligned multiples of epoch_s.

    Whole days read as dates (`2024-05-01`), shorter epochs as their UTC start minute
    (`2024-05-01T13:00Z`).
    """
    start = (now_ms // 1000) // epoch_s * epoch_s
    moment = datetime.fromtimestamp(start, UTC)
    if epoch_s % DAY_S == 0:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def generation_name(label: str, generation: int) -> str:
    return label if generation == 1 else f"{label}~{generation}"


@dataclass(frozen=True, slots=True)
class EpochKey:
    """The key of one epoch, under the name that goes into `pseudonym_epoch`."""

    epoch: str
    key: bytes

    def __repr__(self) -> str:
        return f"EpochKey(epoch={self.epoch!r}, key=<{len(self.key)} bytes>)"


@dataclass(frozen=True, slots=True)
class EpochState:
    """What the store knows of one epoch: when its key was made, and destroyed if it was."""

    epoch: str
    created_at_ms: int | None
    destroyed_at_ms: int | None

    @property
    def destroyed(self) -> bool:
        return self.destroyed_at_ms is not None


class EpochKeyStore(Protocol):
    """Where pseudonym epoch keys live; shared by every bridge that must agree on them."""

    def current(self, label: str, now_ms: int) -> EpochKey:
        """The live key for the epoch `label`, created if it has none yet.

        If `label` was destroyed, its next undestroyed generation (`label~2`, ...).
        """
        ...

    def key(self, epoch: str) -> EpochKey:
        """The key of a named epoch; EpochDestroyed if destroyed, KeyStoreError if unknown."""
        ...

    def destroy(self, epoch: str, now_ms: int) -> bool:
        """Destroy the key of `epoch` for good; False if it was already destroyed or unknown.

        Afterwards no bridge uses it: running bridges notice within `recheck_s`.
        """
        ...

    def epochs(self) -> list[EpochState]:
        """Every epoch the store has a key or a tombstone for, oldest first."""
        ...


@dataclass(slots=True)
class _Keyring:
    """The stored document: live keys and tombstones of destroyed epochs."""

    keys: dict[str, tuple[bytes, int]]
    destroyed: dict[str, int]

    @classmethod
    def empty(cls) -> _Keyring:
        return cls({}, {})

    def current(self, label: str, now_ms: int) -> tuple[EpochKey, bool]:
        """The live key for label (or its next generation), and whether one was created."""
        for generation in range(1, MAX_GENERATIONS + 1):
            name = generation_name(label, generation)
            if name in self.destroyed:
                continue
            stored = self.keys.get(name)
            if stored is not None:
                return EpochKey(name, stored[0]), False
            key = secrets.token_bytes(KEY_BYTES)
            self.keys[name] = (key, now_ms)
            return EpochKey(name, key), True
        raise KeyStoreError(f"epoch {label} was destroyed {MAX_GENERATIONS} times")

    def key(self, epoch: str) -> EpochKey:
        if epoch in self.destroyed:
            raise EpochDestroyed(f"the key of epoch {epoch} was destroyed")
        stored = self.keys.get(epoch)
        if stored is None:
            raise KeyStoreError(f"no key for epoch {epoch}", reason="unknown-epoch")
        return EpochKey(epoch, stored[0])

    def destroy(self, epoch: str, now_ms: int) -> bool:
        if epoch in self.destroyed or epoch not in self.keys:
            return False
        del self.keys[epoch]
        self.destroyed[epoch] = now_ms
        return True

    def states(self) -> list[EpochState]:
        states = [EpochState(name, created, None) for name, (_, created) in self.keys.items()]
        states += [EpochState(name, None, at) for name, at in self.destroyed.items()]
        return sorted(states, key=lambda s: s.epoch)

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "version": 1,
            "epochs": {
                name: {"key": base64.urlsafe_b64encode(key).decode(), "created_at": created}
                for name, (key, created) in sorted(self.keys.items())
            },
            "destroyed": dict(sorted(self.destroyed.items())),
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes, path: Path) -> _Keyring:
        try:
            document = orjson.loads(raw)
            keys = {
                str(name): (base64.urlsafe_b64decode(entry["key"]), int(entry["created_at"]))
                for name, entry in document["epochs"].items()
            }
            destroyed = {str(name): int(at) for name, at in document["destroyed"].items()}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise KeyStoreError(f"{path} is not a pseudonym keyring: {exc}") from exc
        if any(len(key) != KEY_BYTES for key, _ in keys.values()):
            raise KeyStoreError(f"{path} holds a key that is not {KEY_BYTES} bytes")
        return cls(keys, destroyed)


class InMemoryKeyring:
    """An EpochKeyStore in memory, for tests and single-process demos."""

    def __init__(self) -> None:
        self._keyring = _Keyring.empty()
        self._lock = threading.Lock()

    def current(self, label: str, now_ms: int) -> EpochKey:
        with self._lock:
            return self._keyring.current(label, now_ms)[0]

    def key(self, epoch: str) -> EpochKey:
        with self._lock:
            return self._keyring.key(epoch)

    def destroy(self, epoch: str, now_ms: int) -> bool:
        with self._lock:
            return self._keyring.destroy(epoch, now_ms)

    def epochs(self) -> list[EpochState]:
        with self._lock:
            return self._keyring.states()


class KeyringFile:
    """An EpochKeyStore in one JSON file (mode 0600) that every bridge on the host shares.

    Changes happen under an exclusive lock on a sibling `.lock` file and replace the file
    atomically (write, fsync, rename), so concurrent bridges agree on one key per epoch.
    Reads are cached and re-validated against the file's identity at most every
    `recheck_s` seconds: that bounds how long a running bridge keeps using a key another
    process destroyed.
    """

    def __init__(self, path: Path, *, recheck_s: float = 1.0) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._recheck_s = recheck_s
        self._cached: _Keyring | None = None
        self._cached_identity: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._thread_lock = threading.Lock()

    def current(self, label: str, now_ms: int) -> EpochKey:
        with self._thread_lock:
            keyring = self._read_cached()
            found = self._peek_current(keyring, label)
            if found is not None:
                return found
        with self._exclusive() as keyring:
            key, _ = keyring.current(label, now_ms)
            return key

    def key(self, epoch: str) -> EpochKey:
        with self._thread_lock:
            return self._read_cached().key(epoch)

    def destroy(self, epoch: str, now_ms: int) -> bool:
        with self._exclusive() as keyring:
            return keyring.destroy(epoch, now_ms)

    def epochs(self) -> list[EpochState]:
        with self._thread_lock:
            self._checked_at = float("-inf")
            return self._read_cached().states()

    @staticmethod
    def _peek_current(keyring: _Keyring, label: str) -> EpochKey | None:
        for generation in range(1, MAX_GENERATIONS + 1):
            name = generation_name(label, generation)
            if name in keyring.destroyed:
                continue
            stored = keyring.keys.get(name)
            return None if stored is None else EpochKey(name, stored[0])
        return None

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path}: {exc}") from exc
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _read_cached(self) -> _Keyring:
        now = time.monotonic()
        if self._cached is not None and now - self._checked_at < self._recheck_s:
            return self._cached
        identity = self._identity()
        if self._cached is None or identity != self._cached_identity:
            self._cached = self._load()
            self._cached_identity = identity
        self._checked_at = now
        return self._cached

    def _load(self) -> _Keyring:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return _Keyring.empty()
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path}: {exc}") from exc
        return _Keyring.from_json(raw, self.path)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[_Keyring]:
        """The keyring as stored now, locked against other processes; saved if changed."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyStoreError(f"cannot lock {self.path}: {exc}") from exc
        with self._thread_lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                keyring = self._load()
                before = keyring.to_json()
                yield keyring
                after = keyring.to_json()
                if after != before:
                    self._save(after)
                self._cached = keyring
                self._cached_identity = self._identity()
                self._checked_at = time.monotonic()
            finally:
                os.close(lock)

    def _save(self, document: bytes) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(document)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise KeyStoreError(f"cannot write {self.path}: {exc}") from exc
