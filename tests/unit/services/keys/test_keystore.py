"""A region's content keys from the epochs it reads: the same in every region, never in clear."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from services.keys.derivation import EpochSecret
from services.keys.epochs import build_key_epoch, new_master_key
from services.keys.errors import KeyHierarchyError
from services.keys.keystore import EpochKeys
from services.keys.kms import InMemoryKeks
from streams.events import KeyEpoch

P = 60_000
T0 = 1_800_000_000_000
PERIOD0 = T0 // P


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def keks() -> dict[str, InMemoryKeks]:
    return {"eu-west": InMemoryKeks("eu-west"), "us-east": InMemoryKeks("us-east")}


def make_epoch(
    keks: dict[str, InMemoryKeks],
    epoch_id: str,
    started_at: int,
    *,
    master: bytes | None = None,
    created_at: int = 0,
    emergency: bool = False,
) -> KeyEpoch:
    return build_key_epoch(
        master_key=master or new_master_key(),
        epoch_id=epoch_id,
        started_at=started_at,
        period_seconds=60,
        emergency=emergency,
        keks=keks,
        emitted_by="eu-west",
        event_id=f"event-{epoch_id}",
        occurred_at=created_at,
    )


def region_keys(keks: dict[str, InMemoryKeks], region: str, *events: KeyEpoch) -> EpochKeys:
    keys = EpochKeys(keks[region], clock=Clock(T0 + 30_000))
    for event in events:
        keys.add(event)
    return keys


def test_every_region_derives_the_same_keys_and_ids(keks: dict[str, InMemoryKeks]) -> None:
    events = (make_epoch(keks, "a", T0), make_epoch(keks, "b", T0 + 10 * P, created_at=1))
    eu, us = region_keys(keks, "eu-west", *events), region_keys(keks, "us-east", *events[::-1])
    for period in range(PERIOD0, PERIOD0 + 20):
        assert eu.content_key("channel-1", period) == us.content_key("channel-1", period)
    assert eu.content_key("channel-1", PERIOD0 + 9).epoch_id == "a"
    assert eu.content_key("channel-1", PERIOD0 + 10).epoch_id == "b"


def test_a_content_key_is_the_documented_derivation(keks: dict[str, InMemoryKeks]) -> None:
    master = new_master_key()
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0, master=master))
    key = keys.content_key("channel-1", PERIOD0 + 3)
    secret = EpochSecret.from_master("a", master)
    assert key.key == secret.content_key("channel-1", PERIOD0 + 3)
    assert key.key_id == secret.key_id("channel-1", PERIOD0 + 3).hex()
    assert (key.start_ms, key.end_ms) == (T0 + 3 * P, T0 + 4 * P)
    assert key.key.hex() not in repr(key)


def test_current_and_next(keks: dict[str, InMemoryKeks]) -> None:
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0))
    current, following = keys.current_and_next("c", T0 + P + 59_999)
    assert (current.period, following.period) == (PERIOD0 + 1, PERIOD0 + 2)
    assert following.start_ms == current.end_ms
    assert keys.period_at(T0 + P).number == PERIOD0 + 1


def test_before_the_first_epoch_there_is_no_key(keks: dict[str, InMemoryKeks]) -> None:
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0))
    with pytest.raises(KeyHierarchyError) as caught:
        keys.content_key("c", PERIOD0 - 1)
    assert caught.value.reason == "no-epoch"
    with pytest.raises(KeyHierarchyError):
        EpochKeys(keks["eu-west"]).period_at(T0)


def test_an_epoch_this_region_cannot_unwrap_fails_its_periods_instead_of_falling_back(
    keks: dict[str, InMemoryKeks], caplog: pytest.LogCaptureFixture
) -> None:
    only_us = {"us-east": keks["us-east"]}
    events = (make_epoch(keks, "a", T0), make_epoch(only_us, "b", T0 + 10 * P, created_at=1))
    with caplog.at_level(logging.WARNING):
        eu = region_keys(keks, "eu-west", *events)
    assert eu.unavailable() == {"b": "no-copy-for-region"}
    assert "no-copy-for-region" in caplog.text
    assert eu.content_key("c", PERIOD0 + 9).epoch_id == "a"
    with pytest.raises(KeyHierarchyError) as caught:
        eu.content_key("c", PERIOD0 + 10)
    assert caught.value.reason == "epoch-unavailable"
    assert "no-copy-for-region" in str(caught.value)


def test_an_epoch_off_the_grid_is_ignored_in_every_region(keks: dict[str, InMemoryKeks]) -> None:
    bad = make_epoch(keks, "bad", T0 + 1)
    for region in keks:
        keys = region_keys(keks, region, make_epoch(keks, "a", T0), bad)
        assert [e.epoch_id for e in keys.epochs()] == ["a"]
        assert keys.rejected == {"bad": "unaligned-epoch"}


def test_an_emergency_epoch_takes_the_current_period_at_once(
    keks: dict[str, InMemoryKeks],
) -> None:
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0))
    now = T0 + 5 * P + 10_000
    before = keys.content_key_at("c", now)
    keys.add(make_epoch(keks, "x", T0 + 5 * P, created_at=now, emergency=True))
    after = keys.content_key_at("c", now)
    assert (before.epoch_id, after.epoch_id) == ("a", "x")
    assert before.period == after.period
    assert before.key != after.key and before.key_id != after.key_id
    assert keys.content_key("c", PERIOD0 + 4).epoch_id == "a"


def test_a_tombstoned_epoch_is_forgotten(keks: dict[str, InMemoryKeks]) -> None:
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0), make_epoch(keks, "b", T0 + P))
    keys.remove("b")
    keys.remove("never-seen")
    assert keys.content_key("c", PERIOD0 + 5).epoch_id == "a"


def test_a_republished_epoch_with_new_copies_keeps_its_keys(
    keks: dict[str, InMemoryKeks],
) -> None:
    master = new_master_key()
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0, master=master))
    before = keys.content_key("c", PERIOD0)
    keks["eu-west"].rotate()
    keys.add(make_epoch(keks, "a", T0, master=master))
    assert keys.content_key("c", PERIOD0) == before


def test_key_by_id_finds_keys_handed_out(keks: dict[str, InMemoryKeks]) -> None:
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0))
    key = keys.content_key("c", PERIOD0)
    assert keys.key_by_id(key.key_id) == key
    assert keys.key_by_id(key.key_id.upper()) == key
    assert keys.key_by_id("00" * 16) is None
    with pytest.raises(KeyHierarchyError) as caught:
        keys.key_by_id("not-a-key-id")
    assert caught.value.reason == "bad-key-id"


def test_key_by_id_searches_a_contents_recent_periods(keks: dict[str, InMemoryKeks]) -> None:
    master = new_master_key()
    event = make_epoch(keks, "a", T0 - 3_600_000, master=master)
    clock = Clock(T0 + 30_000)
    keys = EpochKeys(keks["eu-west"], lookback_seconds=600, clock=clock)
    keys.add(event)
    secret = EpochSecret.from_master("a", master)
    for offset, found in ((1, True), (0, True), (-10, True), (-11, False), (2, False)):
        key_id = secret.key_id("c", PERIOD0 + offset).hex()
        assert keys.key_by_id(key_id) is None
        match = keys.key_by_id(key_id, content_id="c")
        assert (match is not None) == found, offset
        if match is not None:
            assert (match.content_id, match.period) == ("c", PERIOD0 + offset)
    assert keys.key_by_id(secret.key_id("c", PERIOD0).hex(), content_id="d") is None


def test_a_replaced_keys_id_is_no_longer_known(keks: dict[str, InMemoryKeks]) -> None:
    keys = region_keys(keks, "eu-west", make_epoch(keks, "a", T0))
    old = keys.content_key("c", PERIOD0)
    keys.add(make_epoch(keks, "x", T0, created_at=T0 + 1, emergency=True))
    assert keys.key_by_id(old.key_id) is None
    assert keys.key_by_id(old.key_id, content_id="c") is None
    new = keys.content_key("c", PERIOD0)
    assert keys.key_by_id(new.key_id) == new


def test_a_tampered_epoch_is_unusable_not_fatal(keks: dict[str, InMemoryKeks]) -> None:
    event = make_epoch(keks, "a", T0)
    forged = dataclasses.replace(event, started_at=T0 - P)
    keys = region_keys(keks, "eu-west", forged)
    assert keys.unavailable() == {"a": "unwrap-failed"}
