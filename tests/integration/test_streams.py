"""The event backbone on a real broker: provisioning, typed produce/consume, dead letters."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from liveward.settings import KafkaSettings, Settings
from streams.catalog import CATALOG
from streams.codec import default_codec
from streams.consumer import EventConsumer, consumer_config
from streams.deadletter import DEAD_LETTER_TOPIC, DeadLetterPublisher
from streams.errors import BrokerUnavailable, DeliveryFailed
from streams.events import DeadLetter, IngestHealth, IngestRole, IngestStatus
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer
from streams.topics import admin_client, apply_topics


@pytest.fixture(scope="module")
def catalog_settings(kafka_cluster: Settings) -> Settings:
    apply_topics(kafka_cluster)
    return kafka_cluster


def _beat(seq: int, source: str = "packager-a") -> IngestHealth:
    return IngestHealth(
        event_id=new_event_id(),
        occurred_at=now_ms(),
        region="eu-west",
        source_id=source,
        role=IngestRole.PACKAGER,
        content_id="match-1",
        beat_seq=seq,
        last_segment_seq=seq,
        last_segment_at=now_ms(),
        status=IngestStatus.OK,
    )


def _topic(settings: Settings, name: str, partitions: int = 3) -> str:
    admin = admin_client(settings)  # must outlive the future it hands out
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result()
    return name


def _drain(consumer: EventConsumer, want: int, timeout: float = 30.0) -> list[object]:
    got: list[object] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += [c.event for c in consumer.poll_batch(500, timeout=0.5)]
    return got


def _dead_letters_for(settings: Settings, source_topic: str, want: int) -> list[DeadLetter]:
    consumer = Consumer(consumer_config(settings, f"dlq-reader-{new_event_id()}"))
    consumer.subscribe([DEAD_LETTER_TOPIC])
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + 30
    try:
        while len(letters) < want and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                if message.error() is None:
                    letter = default_codec().decode_as(message.value() or b"", DeadLetter)
                    if letter.source_topic == source_topic:
                        letters.append(letter)
    finally:
        consumer.close()
    return letters


def test_apply_creates_every_catalog_topic_and_a_second_apply_is_a_no_op(
    kafka_cluster: Settings,
) -> None:
    apply_topics(kafka_cluster)
    second = apply_topics(kafka_cluster)
    assert second.created == []
    assert second.drifts == []
    assert sorted(second.unchanged) == sorted(CATALOG.names())
    topics = admin_client(kafka_cluster).list_topics(timeout=10).topics
    for spec in CATALOG:
        assert len(topics[spec.name].partitions) == spec.partitions


def test_apply_reports_a_topic_whose_config_differs(catalog_settings: Settings) -> None:
    admin = admin_client(catalog_settings)
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "keys.rotations",
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result()
    try:
        # Config changes reach the broker's metadata cache a moment after the ack.
        deadline = time.monotonic() + 15
        report = apply_topics(catalog_settings)
        while not report.drifts and time.monotonic() < deadline:
            time.sleep(0.2)
            report = apply_topics(catalog_settings)
        assert report.drifted == ["keys.rotations"]
        (drift,) = report.drifts
        assert (drift.setting, drift.actual) == ("retention.ms", "1000")
    finally:
        wanted = CATALOG["keys.rotations"].config(1)["retention.ms"]
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            "keys.rotations",
            incremental_configs=[
                ConfigEntry("retention.ms", wanted, incremental_operation=AlterConfigOpType.SET)
            ],
        )
        admin.incremental_alter_configs([resource])[resource].result()


def test_events_roundtrip_and_committed_offsets_are_not_redelivered(
    catalog_settings: Settings, unique_name: str
) -> None:
    topic = _topic(catalog_settings, unique_name)
    producer = EventProducer(catalog_settings)
    sent = [_beat(i) for i in range(200)]
    delivered = producer.send_all(CATALOG["ingest.health"], sent)
    assert len(delivered) == 200
    # The catalog spec above only names the key; send the same events to the test topic.
    spec = CATALOG["ingest.health"]
    producer.send_raw(topic, [(spec.key_of(e), producer.codec.encode(e)) for e in sent])

    dead = DeadLetterPublisher(producer, "eu-west")
    consumer = EventConsumer(catalog_settings, [topic], unique_name, dead_letters=dead)
    received = _drain(consumer, 200)
    consumer.commit()
    consumer.close()
    assert sorted(received, key=lambda e: e.beat_seq) == sent  # type: ignore[attr-defined]

    again = EventConsumer(catalog_settings, [topic], unique_name, dead_letters=dead)
    assert _drain(again, 1, timeout=5.0) == []
    again.close()


def test_undecodable_records_go_to_the_dead_letter_topic_with_reason_and_bytes(
    catalog_settings: Settings, unique_name: str
) -> None:
    topic = _topic(catalog_settings, unique_name, partitions=1)
    producer = EventProducer(catalog_settings)
    good = producer.codec.encode(_beat(1))
    unknown = b"\xc3\x01" + b"\x00" * 8 + good[10:]
    bad = [
        (b"k1", b"not avro at all"),
        (b"k2", unknown),
        (b"k3", good[:12]),
    ]
    producer.send_raw(topic, [(b"ok", good), *bad, (b"ok2", good)])

    dead = DeadLetterPublisher(producer, "eu-west")
    consumer = EventConsumer(catalog_settings, [topic], unique_name, dead_letters=dead)
    received = _drain(consumer, 2)
    consumer.commit()
    consumer.close()
    assert len(received) == 2
    assert consumer.dead_lettered == 3

    letters = sorted(_dead_letters_for(catalog_settings, topic, 3), key=lambda d: d.source_offset)
    assert [(d.source_offset, d.reason_code) for d in letters] == [
        (1, "bad-magic"),
        (2, "unknown-fingerprint"),
        (3, "malformed-body"),
    ]
    assert [d.original_value for d in letters] == [value for _, value in bad]
    assert all(d.consumer == unique_name for d in letters)


def test_a_record_the_broker_never_confirms_is_never_reported_accepted(
    catalog_settings: Settings,
) -> None:
    producer = EventProducer(catalog_settings, config={"message.timeout.ms": 2000})
    with pytest.raises(DeliveryFailed):
        producer.send_raw("no-such-topic-" + new_event_id(), [(b"k", b"v")], timeout=10)


def test_send_counted_stores_every_record_or_fails_loudly(
    catalog_settings: Settings, unique_name: str
) -> None:
    topic = _topic(catalog_settings, unique_name)
    producer = EventProducer(catalog_settings, config={"message.timeout.ms": 2000})
    sent = [_beat(i) for i in range(300)]
    spec = CATALOG["ingest.health"]
    records = [(spec.key_of(e), producer.codec.encode(e)) for e in sent]
    assert producer.send_counted(topic, records) == 300
    assert producer.send_counted(topic, []) == 0
    dead = DeadLetterPublisher(producer, "eu-west")
    consumer = EventConsumer(catalog_settings, [topic], unique_name, dead_letters=dead)
    received = _drain(consumer, 300)
    consumer.close()
    assert sorted(received, key=lambda e: e.beat_seq) == sent  # type: ignore[attr-defined]
    with pytest.raises(DeliveryFailed):
        producer.send_counted("no-such-topic-" + new_event_id(), [(b"k", b"v")], timeout=10)


def test_no_broker_at_start_up_is_a_clear_error(tmp_path: object) -> None:
    nowhere = Settings(kafka=KafkaSettings(port=1), state_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(BrokerUnavailable, match="no Kafka broker answered"):
        apply_topics(nowhere, timeout=2)


def test_cli_topics_apply_without_a_broker_exits_non_zero_with_a_reason() -> None:
    env = {"LIVEWARD_KAFKA__PORT": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "topics", "apply"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "broker-unavailable" in result.stderr


def test_kcat_lists_the_catalog_topics(catalog_settings: Settings) -> None:
    """Any Kafka tool sees the catalog: `kcat -L -b` (installed by infra/setup.sh)."""
    kcat = shutil.which("kcat")
    assert kcat is not None, "kcat is missing: run ./infra/setup.sh"
    listing = subprocess.run(
        [kcat, "-L", "-b", catalog_settings.kafka.bootstrap_servers],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for spec in CATALOG:
        assert f'topic "{spec.name}" with {spec.partitions} partitions' in listing
