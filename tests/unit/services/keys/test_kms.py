"""Region KEKs: one contract for the in-memory and the keyring-file KEKs, then the file itself."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from liveward.settings import load_settings
from services.keys.errors import KekKeyringError, UnwrapFailed
from services.keys.kms import (
    InMemoryKeks,
    KeyEncryptionKeys,
    KeyringFileKeks,
    kek_region,
    keyring_path,
    local_keks_of_every_region,
)

SECRET = bytes(range(32))
AAD = b"epoch e1 for eu-west"

Factory = Callable[[str], KeyEncryptionKeys]


@pytest.fixture(params=["memory", "file"])
def make_keks(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "memory":
        return InMemoryKeks
    return lambda region: KeyringFileKeks(tmp_path / f"kek-{region}.json", region)


def test_wrap_then_unwrap_gives_the_secret_back(make_keks: Factory) -> None:
    keks = make_keks("eu-west")
    copy = keks.wrap(SECRET, associated_data=AAD)
    assert SECRET not in copy.wrapped
    assert len(copy.wrapped) == 12 + 32 + 16
    assert keks.unwrap(copy.kek_id, copy.wrapped, associated_data=AAD) == SECRET


def test_two_wraps_differ(make_keks: Factory) -> None:
    keks = make_keks("eu-west")
    assert keks.wrap(SECRET, associated_data=AAD) != keks.wrap(SECRET, associated_data=AAD)


def test_another_regions_copy_cannot_be_unwrapped(make_keks: Factory) -> None:
    ours, theirs = make_keks("eu-west"), make_keks("us-east")
    copy = theirs.wrap(SECRET, associated_data=AAD)
    with pytest.raises(UnwrapFailed) as caught:
        ours.unwrap(copy.kek_id, copy.wrapped, associated_data=AAD)
    assert caught.value.reason == "wrong-region-kek"


def test_a_copy_claiming_our_kek_but_wrapped_by_another_fails_authentication(
    make_keks: Factory,
) -> None:
    ours, theirs = make_keks("eu-west"), make_keks("us-east")
    forged = theirs.wrap(SECRET, associated_data=AAD)
    with pytest.raises(UnwrapFailed) as caught:
        ours.unwrap(ours.kek_ids()[-1], forged.wrapped, associated_data=AAD)
    assert caught.value.reason == "unwrap-failed"


@pytest.mark.parametrize("tamper", ["aad", "body", "truncate"])
def test_tampering_fails_authentication(make_keks: Factory, tamper: str) -> None:
    keks = make_keks("eu-west")
    copy = keks.wrap(SECRET, associated_data=AAD)
    wrapped, aad = copy.wrapped, AAD
    if tamper == "aad":
        aad = b"epoch e2 for eu-west"
    elif tamper == "body":
        wrapped = wrapped[:20] + bytes([wrapped[20] ^ 1]) + wrapped[21:]
    else:
        wrapped = wrapped[:5]
    with pytest.raises(UnwrapFailed) as caught:
        keks.unwrap(copy.kek_id, wrapped, associated_data=aad)
    assert caught.value.reason == "unwrap-failed"


def test_a_rotated_kek_wraps_new_copies_and_still_unwraps_old_ones(make_keks: Factory) -> None:
    keks = make_keks("eu-west")
    old = keks.wrap(SECRET, associated_data=AAD)
    new_id = keks.rotate()
    assert new_id != old.kek_id
    assert keks.kek_ids() == (old.kek_id, new_id)
    assert new_id.startswith("eu-west.v2.")
    new = keks.wrap(SECRET, associated_data=AAD)
    assert new.kek_id == new_id
    assert keks.unwrap(old.kek_id, old.wrapped, associated_data=AAD) == SECRET
    assert keks.unwrap(new.kek_id, new.wrapped, associated_data=AAD) == SECRET


def test_an_unknown_version_of_our_own_kek_is_named_as_such(make_keks: Factory) -> None:
    keks = make_keks("eu-west")
    copy = keks.wrap(SECRET, associated_data=AAD)
    with pytest.raises(UnwrapFailed) as caught:
        keks.unwrap("eu-west.v9.00000000", copy.wrapped, associated_data=AAD)
    assert caught.value.reason == "unknown-kek"


def test_kek_ids_name_their_region() -> None:
    assert kek_region("eu-west.v3.0a1b2c3d") == "eu-west"
    assert kek_region("ap.south.v1.0a1b2c3d") == "ap.south"
    assert kek_region("garbage") == ""


def test_the_keyring_file_is_created_on_first_use_private_and_without_the_secret(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys" / "kek-eu-west.json"
    keks = KeyringFileKeks(path, "eu-west")
    assert not path.exists()
    copy = keks.wrap(SECRET, associated_data=AAD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert document["format"] == 1
    assert document["region"] == "eu-west"
    assert [k["kek_id"] for k in document["keks"]] == [copy.kek_id]
    assert SECRET.hex() not in path.read_text()


def test_a_second_holder_of_the_same_file_unwraps_after_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "kek-eu-west.json"
    writer = KeyringFileKeks(path, "eu-west")
    reader = KeyringFileKeks(path, "eu-west")
    first = writer.wrap(SECRET, associated_data=AAD)
    assert reader.unwrap(first.kek_id, first.wrapped, associated_data=AAD) == SECRET
    writer.rotate()
    # The reader has the old ring cached: an unknown version of its own region re-reads.
    second = writer.wrap(SECRET, associated_data=AAD)
    assert reader.unwrap(second.kek_id, second.wrapped, associated_data=AAD) == SECRET


def test_holders_racing_to_create_the_keyring_end_up_with_one_kek(tmp_path: Path) -> None:
    path = tmp_path / "kek-eu-west.json"
    holders = [KeyringFileKeks(path, "eu-west") for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda keks: keks.wrap(SECRET, associated_data=AAD).kek_id, holders))
    assert len(ids) == 1


def test_a_regenerated_keyring_cannot_unwrap_what_the_lost_one_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "kek-eu-west.json"
    copy = KeyringFileKeks(path, "eu-west").wrap(SECRET, associated_data=AAD)
    path.unlink()
    with pytest.raises(UnwrapFailed) as caught:
        KeyringFileKeks(path, "eu-west").unwrap(copy.kek_id, copy.wrapped, associated_data=AAD)
    assert caught.value.reason == "unknown-kek"


def test_a_keyring_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kek-eu-west.json"
    KeyringFileKeks(path, "eu-west").kek_ids()
    os.chmod(path, 0o644)
    with pytest.raises(KekKeyringError, match="chmod 600"):
        KeyringFileKeks(path, "eu-west").kek_ids()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"format": 2, "region": "eu-west", "keks": []}',
        '{"format": 1, "region": "us-east", "keks": []}',
        '{"format": 1, "region": "eu-west", "keks": []}',
        '{"format": 1, "region": "eu-west", "keks": [{"kek_id": "eu-west.v1.00", '
        '"version": 1, "created_at": 0, "key": "AAAA"}]}',
    ],
)
def test_a_broken_keyring_file_is_an_error_not_a_new_keyring(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kek-eu-west.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KekKeyringError) as caught:
        KeyringFileKeks(path, "eu-west").wrap(SECRET, associated_data=AAD)
    assert caught.value.reason == "kek-keyring"
    assert path.read_text() == content


def test_every_configured_region_gets_its_own_keyring_under_the_state_dir(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, region="eu-west", regions=("eu-west", "us-east"))
    keks = local_keks_of_every_region(settings)
    assert sorted(keks) == ["eu-west", "us-east"]
    for region, region_keks in keks.items():
        region_keks.kek_ids()
        assert keyring_path(settings, region) == tmp_path / "keys" / f"kek-{region}.json"
        assert keyring_path(settings, region).exists()
