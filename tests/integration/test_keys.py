"""The key hierarchy on a real broker: regions agree, emergency rotation switches them all."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from typer.testing import CliRunner

from liveward.commands.keys import app
from liveward.settings import Settings
from services.keys.drill import emergency_switch
from services.keys.epochs import unwrap_master_key
from services.keys.errors import KeyHierarchyError
from services.keys.exposure import content_key_exposure, master_key_exposure
from services.keys.keystore import KeyStore
from services.keys.kms import InMemoryKeks, local_keks, local_keks_of_every_region
from services.keys.rotation import KeyTopics, Rotator
from services.keys.timeline import RotationPolicy
from streams.catalog import CATALOG, TopicCatalog
from streams.consumer import consumer_config
from streams.events import KeyEpoch
from streams.meta import now_ms
from streams.producer import EventProducer
from streams.topics import apply_topics

CONTENTS = ("channel-1", "channel-2")


@pytest.fixture
def topics(kafka_cluster: Settings, unique_name: str) -> KeyTopics:
    """keys.epochs and keys.rotations of this test alone, configured as the catalog's."""
    isolated = KeyTopics(
        epochs=dataclasses.replace(CATALOG["keys.epochs"], name=f"epochs-{unique_name}"),
        rotations=dataclasses.replace(CATALOG["keys.rotations"], name=f"rot-{unique_name}"),
    )
    apply_topics(kafka_cluster, TopicCatalog((isolated.epochs, isolated.rotations)))
    return isolated


@pytest.fixture
def stores() -> Iterator[list[KeyStore]]:
    """KeyStores a test opens; closed afterwards."""
    opened: list[KeyStore] = []
    yield opened
    for store in opened:
        store.close()


def open_store(
    settings: Settings, stores: list[KeyStore], region: str, topic: str, **kwargs: object
) -> KeyStore:
    store = KeyStore(settings, region, topic=topic, **kwargs)  # type: ignore[arg-type]
    stores.append(store)
    store.start()
    assert store.wait_ready(30), f"{region} never caught up with {topic}"
    return store


def raw_records(settings: Settings, topic: str) -> list[bytes]:
    """Every key and value on topic, as bytes on the broker."""
    consumer = Consumer(
        consumer_config(settings, f"raw-{uuid.uuid4().hex}", **{"enable.partition.eof": True})
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    pending, found = set(partitions), []
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition() or 0)
            continue
        found.extend(part for part in (message.key(), message.value()) if part)
    consumer.close()
    assert not pending, f"did not read {topic} to its end"
    return found


def test_regions_derive_the_same_keys_from_the_topic_and_none_travels_in_clear(
    kafka_cluster: Settings, topics: KeyTopics, stores: list[KeyStore]
) -> None:
    settings = kafka_cluster
    keks = local_keks_of_every_region(settings)
    rotator_keys = open_store(settings, stores, settings.region, topics.epochs.name)
    producer = EventProducer(settings)
    rotator = Rotator(
        rotator_keys,
        keks,
        producer,
        policy=RotationPolicy(period_seconds=60),
        contents=lambda: CONTENTS,
        topics=topics,
    )
    announced = rotator.tick().announced
    rotator.rotate()  # a scheduled epoch two periods on
    producer.close()

    # Each region reads the topic with its own keyring file and no other channel.
    eu = open_store(settings, stores, "eu-west", topics.epochs.name)
    us = open_store(settings, stores, "us-east", topics.epochs.name)
    assert local_keks(settings, "eu-west").kek_ids() != local_keks(settings, "us-east").kek_ids()
    assert len(eu.epochs()) == len(us.epochs()) == 2
    period = eu.period_at(now_ms()).number
    for content_id in CONTENTS:
        for p in range(period, period + 4):
            assert eu.content_key(content_id, p) == us.content_key(content_id, p)
    assert {eu.content_key(c, period).epoch_id for c in CONTENTS} != {
        eu.content_key(c, period + 3).epoch_id for c in CONTENTS
    }
    for event in announced:
        assert us.content_key(event.content_id, event.period).key_id == event.key_id

    # A keyring that is not the region's own cannot unwrap its copies.
    stranger = open_store(
        settings, stores, "eu-west", topics.epochs.name, keks=InMemoryKeks("eu-west")
    )
    assert set(stranger.unavailable().values()) == {"unknown-kek"}
    with pytest.raises(KeyHierarchyError) as caught:
        stranger.content_key_at(CONTENTS[0], now_ms())
    assert caught.value.reason == "epoch-unavailable"

    # On the broker: wrapped copies and key ids only.
    wire = b"".join(raw_records(settings, topics.epochs.name))
    wire += b"".join(raw_records(settings, topics.rotations.name))
    epochs = [eu.event(info.epoch_id) for info in eu.epochs()]
    masters = [unwrap_master_key(e, keks["eu-west"]) for e in epochs if isinstance(e, KeyEpoch)]
    content_keys = [eu.content_key(c, p).key for c in CONTENTS for p in range(period, period + 4)]
    assert len(masters) == 2
    for secret in masters + content_keys:
        assert secret not in wire
        assert secret.hex().encode() not in wire


def test_emergency_rotation_from_the_command_line_switches_every_region(
    kafka_cluster: Settings, stores: list[KeyStore]
) -> None:
    settings = kafka_cluster
    apply_topics(settings)
    runner = CliRunner()
    env = settings.as_env()
    first = runner.invoke(app, ["rotate", "--period-seconds", "60"], env=env)
    assert first.exit_code == 0, first.output

    regions = [open_store(settings, stores, r, "keys.epochs") for r in ("eu-west", "us-east")]
    before = [r.content_key_at(CONTENTS[0], now_ms()) for r in regions]
    assert before[0] == before[1]

    result = runner.invoke(app, ["rotate", "--emergency"], env=env)
    assert result.exit_code == 0, result.output
    match = re.search(r"emergency epoch (\S+) governs from", result.output)
    assert match, result.output
    epoch_id = match.group(1)
    began = time.monotonic()
    for region in regions:
        assert region.wait_for_epoch(epoch_id, timeout=30), region.region
    print(f"\nemergency epoch read by both regions in {time.monotonic() - began:.3f} s")
    now = now_ms()
    after = [r.content_key_at(CONTENTS[0], now) for r in regions]
    assert after[0] == after[1]
    assert after[0].epoch_id == epoch_id
    assert after[0].key != before[0].key
    assert regions[0].epoch_in_force(now).emergency
    nxt = [r.current_and_next(CONTENTS[0], now)[1] for r in regions]
    assert nxt[0] == nxt[1] and nxt[0].epoch_id == epoch_id

    shown = runner.invoke(app, ["status", "--content", CONTENTS[0]], env=env)
    assert shown.exit_code == 0, shown.output
    assert epoch_id in shown.output and after[0].key_id in shown.output
    assert after[0].key.hex() not in shown.output + result.output


def test_the_rotation_loop_announces_periods(kafka_cluster: Settings) -> None:
    apply_topics(kafka_cluster)
    result = CliRunner().invoke(
        app,
        ["run", "--duration", "2", "--no-follow-packagers", "--content", "loop-channel"],
        env=kafka_cluster.as_env(),
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"period \d+ .*: 1 contents, epoch \S+", result.output), result.output


def test_key_leak_response_switches_every_region_and_bounds_the_blast_radius(
    kafka_cluster: Settings, topics: KeyTopics, stores: list[KeyStore]
) -> None:
    settings = kafka_cluster
    rotator_keys = open_store(settings, stores, settings.region, topics.epochs.name)
    producer = EventProducer(settings)
    rotator = Rotator(
        rotator_keys,
        local_keks_of_every_region(settings),
        producer,
        policy=RotationPolicy(period_seconds=60),
        contents=lambda: CONTENTS,
        topics=topics,
    )
    rotator.tick()
    regions = [open_store(settings, stores, r, topics.epochs.name) for r in ("eu-west", "us-east")]

    leaked_key = regions[1].content_key_at(CONTENTS[0], now_ms())
    key_leak = content_key_exposure(
        leaked_key.content_id, leaked_key.period, leaked_key.epoch_id, 60
    )
    assert (key_leak.content_ids, key_leak.periods) == ((CONTENTS[0],), 1)
    leaked_epoch = leaked_key.epoch_id
    assert not master_key_exposure(regions[1].epochs(), leaked_epoch).contained

    report = emergency_switch(rotator, regions, timeout=30)
    producer.close()
    print(
        f"\nemergency epoch confirmed in {report.confirmed_s * 1000:.0f} ms; regions serving "
        f"it after {', '.join(f'{r} {s * 1000:.0f} ms' for r, s in report.regions_s.items())}"
    )
    assert set(report.regions_s) == {"eu-west", "us-east"}
    assert report.slowest_s < 10
    for region in regions:
        current = region.content_key_at(CONTENTS[0], now_ms())
        assert current.epoch_id == report.epoch.epoch_id
        assert region.key_by_id(leaked_key.key_id, content_id=CONTENTS[0]) is None
        radius = master_key_exposure(region.epochs(), leaked_epoch)
        assert radius.contained
        assert radius.end_ms == report.epoch.started_at
