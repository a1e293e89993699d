"""Epoch master keys wrapped for every region: each region unwraps its own copy, and only that."""

from __future__ import annotations

import dataclasses

import pytest

from services.keys.epochs import (
    build_key_epoch,
    new_epoch_id,
    new_master_key,
    unwrap_master_key,
    wrap_context,
)
from services.keys.errors import KeyHierarchyError, UnwrapFailed
from services.keys.kms import InMemoryKeks
from streams.codec import default_codec
from streams.events import KeyEpoch

T0 = 1_800_000_000_000


def make_epoch(
    keks: dict[str, InMemoryKeks], master: bytes, *, emergency: bool = False
) -> KeyEpoch:
    return build_key_epoch(
        master_key=master,
        epoch_id="e1",
        started_at=T0,
        period_seconds=120,
        emergency=emergency,
        keks=keks,
        emitted_by="eu-west",
        event_id="00000000-0000-0000-0000-000000000001",
        occurred_at=T0 - 1,
    )


@pytest.fixture
def keks() -> dict[str, InMemoryKeks]:
    return {"eu-west": InMemoryKeks("eu-west"), "us-east": InMemoryKeks("us-east")}


def test_every_region_unwraps_the_same_master_from_its_own_copy(
    keks: dict[str, InMemoryKeks],
) -> None:
    master = new_master_key()
    epoch = make_epoch(keks, master)
    assert [c.region for c in epoch.wrapped_keys] == ["eu-west", "us-east"]
    for region_keks in keks.values():
        assert unwrap_master_key(epoch, region_keks) == master


def test_the_encoded_event_never_holds_the_master(keks: dict[str, InMemoryKeks]) -> None:
    master = new_master_key()
    encoded = default_codec().encode(make_epoch(keks, master))
    assert master not in encoded
    assert master.hex().encode() not in encoded


def test_a_region_without_a_copy_is_told_so(keks: dict[str, InMemoryKeks]) -> None:
    epoch = make_epoch(keks, new_master_key())
    with pytest.raises(UnwrapFailed) as caught:
        unwrap_master_key(epoch, InMemoryKeks("ap-south"))
    assert caught.value.reason == "no-copy-for-region"


def test_a_region_with_another_keyring_cannot_unwrap(keks: dict[str, InMemoryKeks]) -> None:
    epoch = make_epoch(keks, new_master_key())
    with pytest.raises(UnwrapFailed) as caught:
        unwrap_master_key(epoch, InMemoryKeks("eu-west"))
    assert caught.value.reason == "unknown-kek"


def test_a_copy_moved_to_another_region_fails(keks: dict[str, InMemoryKeks]) -> None:
    epoch = make_epoch(keks, new_master_key())
    eu, us = epoch.wrapped_keys
    swapped = dataclasses.replace(
        epoch, wrapped_keys=(dataclasses.replace(us, region="eu-west"), eu)
    )
    with pytest.raises(UnwrapFailed) as caught:
        unwrap_master_key(swapped, keks["eu-west"])
    assert caught.value.reason == "wrong-region-kek"


@pytest.mark.parametrize(
    "change",
    [
        {"epoch_id": "e2"},
        {"started_at": T0 + 120_000},
        {"period_seconds": 60},
        {"emergency": True},
        {"occurred_at": T0 + 1},
    ],
)
def test_changing_what_the_copy_is_bound_to_fails(
    keks: dict[str, InMemoryKeks], change: dict[str, object]
) -> None:
    epoch = dataclasses.replace(make_epoch(keks, new_master_key()), **change)  # type: ignore[arg-type]
    with pytest.raises(UnwrapFailed) as caught:
        unwrap_master_key(epoch, keks["eu-west"])
    assert caught.value.reason == "unwrap-failed"


def test_the_wrap_context_is_documented_json() -> None:
    context = wrap_context(
        epoch_id="e1",
        region="eu-west",
        started_at=5,
        created_at=4,
        period_seconds=60,
        emergency=False,
    )
    assert context == b'["liveward key epoch v1","e1","eu-west",5,4,60,false]'


def test_epoch_ids_say_when_and_are_unique() -> None:
    ids = {new_epoch_id(T0) for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("20270115T080000Z-") for i in ids)


def test_a_master_of_the_wrong_size_is_refused(keks: dict[str, InMemoryKeks]) -> None:
    with pytest.raises(KeyHierarchyError) as caught:
        make_epoch(keks, bytes(16))
    assert caught.value.reason == "bad-master-key"
