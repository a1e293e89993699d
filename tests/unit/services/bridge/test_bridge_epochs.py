"""Pseudonym epoch keys: one contract for the keyring file and the in-memory keyring."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from services.bridge.epochs import (
    EpochKeyStore,
    InMemoryKeyring,
    KeyringFile,
    epoch_label,
)
from services.bridge.errors import EpochDestroyed, KeyStoreError
from tests.unit.services.bridge.conftest import NOW_MS


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> EpochKeyStore:
    if request.param == "file":
        return KeyringFile(tmp_path / "bridge" / "keys.json")
    return InMemoryKeyring()


def test_an_epoch_gets_one_random_key(store: EpochKeyStore) -> None:
    first = store.current("2024-05-01", NOW_MS)

    assert store.current("2024-05-01", NOW_MS + 5) == first
    assert store.key("2024-05-01") == first
    assert len(first.key) == 32
    assert store.current("2024-05-02", NOW_MS).key != first.key


def test_a_destroyed_epoch_is_gone_and_its_name_never_reused(store: EpochKeyStore) -> None:
    old = store.current("2024-05-01", NOW_MS)

    assert store.destroy("2024-05-01", NOW_MS + 1)
    assert not store.destroy("2024-05-01", NOW_MS + 2)
    with pytest.raises(EpochDestroyed):
        store.key("2024-05-01")
    successor = store.current("2024-05-01", NOW_MS + 3)
    assert successor.epoch == "2024-05-01~2"
    assert successor.key != old.key
    states = {s.epoch: s for s in store.epochs()}
    assert states["2024-05-01"].destroyed and states["2024-05-01"].destroyed_at_ms == NOW_MS + 1
    assert not states["2024-05-01~2"].destroyed


def test_unknown_epochs(store: EpochKeyStore) -> None:
    assert not store.destroy("1999-01-01", NOW_MS)
    with pytest.raises(KeyStoreError, match="no key"):
        store.key("1999-01-01")


def test_bridges_sharing_the_file_agree_and_see_destruction(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    one, two = KeyringFile(path, recheck_s=0.0), KeyringFile(path, recheck_s=0.0)

    key = one.current("2024-05-01", NOW_MS)
    assert two.current("2024-05-01", NOW_MS) == key
    assert two.destroy("2024-05-01", NOW_MS)
    assert one.current("2024-05-01", NOW_MS).epoch == "2024-05-01~2"


def test_concurrent_first_use_creates_one_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    seen: list[bytes] = []

    def use(store: KeyringFile) -> None:
        seen.append(store.current("2024-05-01", NOW_MS).key)

    threads = [threading.Thread(target=use, args=(KeyringFile(path),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(seen)) == 1


def test_destroying_removes_the_key_bytes_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyringFile(path)
    key = store.current("2024-05-01", NOW_MS)
    encoded = base64.urlsafe_b64encode(key.key)
    assert encoded in path.read_bytes()

    store.destroy("2024-05-01", NOW_MS)

    assert encoded not in path.read_bytes()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b'{"epochs": {"e": {"key": "AAAA", "created_at": 1}}, "destroyed": {}}'],
)
def test_a_broken_keyring_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)

    with pytest.raises(KeyStoreError, match=r"keys\.json"):
        KeyringFile(path).current("2024-05-01", NOW_MS)


@pytest.mark.parametrize(
    ("epoch_s", "label"),
    [
        (86_400, "2024-05-01"),
        (3_600, "2024-05-01T10:00Z"),
        (900, "2024-05-01T10:00Z"),
        (7 * 86_400, "2024-04-25"),
    ],
)
def test_epochs_are_utc_aligned_and_named_by_their_start(epoch_s: int, label: str) -> None:
    assert epoch_label(NOW_MS + 59_000, epoch_s) == label


def test_the_last_millisecond_of_a_day_belongs_to_it() -> None:
    midnight = 1_714_608_000_000  # 2024-05-02T00:00:00Z

    assert epoch_label(midnight - 1, 86_400) == "2024-05-01"
    assert epoch_label(midnight, 86_400) == "2024-05-02"
