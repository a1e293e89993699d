"""The rotator: first, scheduled and emergency epochs, period announcements, and no key in clear."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable, Sequence

import pytest

from services.keys.epochs import unwrap_master_key
from services.keys.errors import KeyHierarchyError
from services.keys.keystore import EpochKeys
from services.keys.kms import InMemoryKeks, KeyEncryptionKeys
from services.keys.rotation import KeyTopics, Rotator
from services.keys.timeline import RotationPolicy
from streams.catalog import TopicSpec
from streams.codec import AvroEvent, default_codec
from streams.errors import DeliveryFailed
from streams.events import KeyEpoch, KeyRotated
from streams.producer import Delivered

P = 60_000
T0 = 1_800_000_000_000
TOPICS = KeyTopics()


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class RecordingPublisher:
    """Keeps what a producer would send, encoded as on the wire; a stand-in for Kafka."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []
        self.codec = default_codec()
        self.fail = False

    def send_all(
        self, topic: str | TopicSpec, events: Sequence[AvroEvent], *, timeout: float = 30.0
    ) -> list[Delivered]:
        assert isinstance(topic, TopicSpec)
        return self.send_raw(topic.name, [(topic.key_of(e), self.codec.encode(e)) for e in events])

    def send_raw(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None]],
        *,
        timeout: float = 30.0,
    ) -> list[Delivered]:
        if self.fail:
            raise DeliveryFailed("broker away")
        batch = list(records)
        self.records.extend((topic, key, value) for key, value in batch)
        return [Delivered(topic, 0, i) for i in range(len(batch))]

    def events(self, topic: str) -> list[AvroEvent | None]:
        return [
            None if value is None else self.codec.decode(value)
            for name, _, value in self.records
            if name == topic
        ]

    def replay_into(self, keys: EpochKeys) -> None:
        """What a KeyStore following keys.epochs would do with these records."""
        for name, key, value in self.records:
            if name != TOPICS.epochs.name:
                continue
            if value is None:
                keys.remove((key or b"").decode())
            else:
                event = self.codec.decode(value)
                assert isinstance(event, KeyEpoch)
                keys.add(event)


@pytest.fixture
def keks() -> dict[str, KeyEncryptionKeys]:
    return {"eu-west": InMemoryKeks("eu-west"), "us-east": InMemoryKeks("us-east")}


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 10_000)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


def make_rotator(
    keks: dict[str, KeyEncryptionKeys],
    publisher: RecordingPublisher,
    clock: Clock,
    *,
    contents: Sequence[str] = ("channel-1", "channel-2"),
    policy: RotationPolicy | None = None,
) -> Rotator:
    return Rotator(
        EpochKeys(keks["eu-west"], clock=clock),
        keks,
        publisher,
        policy=policy or RotationPolicy(period_seconds=60, epoch_seconds=3_600, lead_seconds=600),
        contents=lambda: contents,
        clock=clock,
    )


def rotations(publisher: RecordingPublisher) -> list[KeyRotated]:
    events = publisher.events(TOPICS.rotations.name)
    assert all(isinstance(e, KeyRotated) for e in events)
    return [e for e in events if isinstance(e, KeyRotated)]


def test_the_first_tick_creates_an_epoch_in_force_now_and_announces_the_period(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    outcome = make_rotator(keks, publisher, clock).tick()
    (epoch,) = outcome.created
    assert (epoch.started_at, epoch.period_seconds, epoch.emergency) == (T0, 60, False)
    assert epoch.regions == ("eu-west", "us-east")
    announced = rotations(publisher)
    assert [(r.content_id, r.period, r.epoch_id) for r in announced] == [
        ("channel-1", T0 // P, epoch.epoch_id),
        ("channel-2", T0 // P, epoch.epoch_id),
    ]
    assert (announced[0].period_start, announced[0].period_end) == (T0, T0 + P)


def test_announcements_follow_period_boundaries_only(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    rotator = make_rotator(keks, publisher, clock)
    rotator.tick()
    clock.now += 30_000
    assert rotator.tick().announced == ()
    clock.now = T0 + P
    assert [r.period for r in rotator.tick().announced] == [T0 // P + 1] * 2


def test_every_region_gets_the_announced_key_ids(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    make_rotator(keks, publisher, clock).tick()
    us = EpochKeys(keks["us-east"], clock=clock)
    publisher.replay_into(us)
    for announced in rotations(publisher):
        key = us.content_key(announced.content_id, announced.period)
        assert key.key_id == announced.key_id
        assert key.epoch_id == announced.epoch_id


def test_a_scheduled_epoch_is_published_ahead_and_takes_over_on_time(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    rotator = make_rotator(keks, publisher, clock)
    (first,) = rotator.tick().created
    clock.now = T0 + 3_000_000 - 1
    assert rotator.tick().created == ()
    clock.now = T0 + 3_000_000
    (second,) = rotator.tick().created
    assert second.started_at == T0 + 3_600_000
    assert not second.emergency
    clock.now = T0 + 3_600_000
    announced = rotator.tick().announced
    assert {r.epoch_id for r in announced} == {second.epoch_id}
    assert first.epoch_id != second.epoch_id


def test_an_emergency_rotation_replaces_the_current_key_everywhere_and_withdraws_pending(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    rotator = make_rotator(keks, publisher, clock)
    rotator.tick()
    clock.now = T0 + 3_000_000 + 20_000
    (pending,) = rotator.tick().created
    us_before = EpochKeys(keks["us-east"], clock=clock)
    publisher.replay_into(us_before)
    old_key = us_before.content_key_at("channel-1", clock.now)

    outcome = rotator.rotate(emergency=True)
    (emergency,) = outcome.created
    assert emergency.emergency
    assert emergency.started_at == T0 + 3_000_000
    assert outcome.withdrawn == (pending.epoch_id,)
    assert [(r.content_id, r.epoch_id) for r in outcome.announced] == [
        ("channel-1", emergency.epoch_id),
        ("channel-2", emergency.epoch_id),
    ]
    for region_keks in keks.values():
        keys = EpochKeys(region_keks, clock=clock)
        publisher.replay_into(keys)
        new_key = keys.content_key_at("channel-1", clock.now)
        assert new_key.epoch_id == emergency.epoch_id
        assert new_key.key != old_key.key
        assert keys.content_key_at("channel-1", clock.now + 10 * 3_600_000).epoch_id == (
            emergency.epoch_id
        )
        assert not keys.has_epoch(pending.epoch_id)
    # After the emergency, the schedule publishes a fresh next epoch in due time.
    clock.now = emergency.started_at + 3_000_000
    (following,) = rotator.tick().created
    assert following.started_at == emergency.started_at + 3_600_000


def test_a_manual_rotation_waits_for_a_boundary_no_license_carries(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    rotator = make_rotator(keks, publisher, clock)
    rotator.tick()
    (epoch,) = rotator.rotate().created
    assert epoch.started_at == T0 + 2 * P
    assert rotator.rotate(emergency=False).created[0].started_at == T0 + 2 * P


def test_a_rotation_before_any_epoch_creates_the_first(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    (epoch,) = make_rotator(keks, publisher, clock).rotate().created
    assert epoch.started_at == T0


def test_a_different_period_length_is_refused_for_an_existing_chain(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    make_rotator(keks, publisher, clock).tick()
    keys = EpochKeys(keks["eu-west"], clock=clock)
    publisher.replay_into(keys)
    rotator = Rotator(keys, keks, publisher, policy=RotationPolicy(period_seconds=120))
    with pytest.raises(KeyHierarchyError) as caught:
        rotator.rotate(emergency=True)
    assert caught.value.reason == "period-length-change"
    # Without an explicit length the chain's is used, so an emergency never fails on it.
    rotator = Rotator(keys, keks, publisher, clock=clock)
    assert rotator.rotate(emergency=True).created[0].period_seconds == 60


def test_the_rotating_region_must_be_one_it_wraps_for(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher
) -> None:
    with pytest.raises(KeyHierarchyError) as caught:
        Rotator(EpochKeys(InMemoryKeks("ap-south")), keks, publisher)
    assert caught.value.reason == "no-regions"


def test_the_loop_survives_kafka_trouble_and_stops_on_time(
    keks: dict[str, KeyEncryptionKeys],
    publisher: RecordingPublisher,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rotator = make_rotator(keks, publisher, clock)
    publisher.fail = True
    with caplog.at_level(logging.ERROR):
        rotator.run(threading.Event(), duration=0.05)
    assert "delivery-failed" in caplog.text
    publisher.fail = False
    rotator.run(threading.Event(), duration=0.05)
    assert rotations(publisher)


def test_no_key_travels_in_clear_on_any_topic_or_log(
    keks: dict[str, KeyEncryptionKeys],
    publisher: RecordingPublisher,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        rotator = make_rotator(keks, publisher, clock)
        rotator.tick()
        clock.now = T0 + 3_000_000
        rotator.tick()
        rotator.rotate(emergency=True)
        clock.now += P
        rotator.tick()
        us = EpochKeys(keks["us-east"], clock=clock)
        publisher.replay_into(us)
        contents = ("channel-1", "channel-2")
        content_keys = [
            us.content_key(c, p) for c in contents for p in range(T0 // P, clock.now // P + 2)
        ]
    epochs = [e for e in publisher.events(TOPICS.epochs.name) if isinstance(e, KeyEpoch)]
    masters = [unwrap_master_key(e, keks["us-east"]) for e in epochs]
    secrets = masters + [k.key for k in content_keys]
    assert len(epochs) >= 3 and content_keys
    wire = b"".join((key or b"") + (value or b"") for _, key, value in publisher.records)
    logs = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in secrets:
        assert secret not in wire
        forms = (
            secret.hex(),
            secret.hex().upper(),
            repr(secret),
            base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode().rstrip("="),
        )
        for form in forms:
            assert form not in logs
            assert form.encode() not in wire
    for key in content_keys:
        assert key.key.hex() not in repr(key)


def test_rewrap_moves_copies_to_a_rotated_kek_and_to_a_new_region_keeping_every_key(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> None:
    rotator = make_rotator(keks, publisher, clock)
    rotator.tick()
    rotator.rotate()
    before = EpochKeys(keks["us-east"], clock=clock)
    publisher.replay_into(before)
    expected = [before.content_key("channel-1", T0 // P + i) for i in range(4)]

    new_kek = keks["us-east"].rotate()
    grown = {**keks, "ap-south": InMemoryKeks("ap-south")}
    rewrapper = Rotator(rotator_keys(keks, publisher, clock), grown, publisher, clock=clock)
    assert len(rewrapper.rewrap()) == 2

    for region in ("us-east", "ap-south"):
        after = EpochKeys(grown[region], clock=clock)
        publisher.replay_into(after)
        assert not after.unavailable()
        assert [after.content_key("channel-1", T0 // P + i) for i in range(4)] == expected
    latest = publisher.events(TOPICS.epochs.name)[-1]
    assert isinstance(latest, KeyEpoch)
    assert dict((c.region, c.kek_id) for c in latest.wrapped_keys)["us-east"] == new_kek


def rotator_keys(
    keks: dict[str, KeyEncryptionKeys], publisher: RecordingPublisher, clock: Clock
) -> EpochKeys:
    keys = EpochKeys(keks["eu-west"], clock=clock)
    publisher.replay_into(keys)
    return keys
