"""The backbone's speed: events through our codec and producer, next to raw and Java baselines."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.cimpl import NewTopic

from infra.kafka import KafkaCluster
from liveward.settings import Settings
from streams.catalog import CATALOG
from streams.codec import default_codec
from streams.consumer import EventConsumer, consumer_config
from streams.deadletter import DeadLetterPublisher
from streams.events import QoETelemetrySample
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer, producer_config
from streams.topics import admin_client

_RECORDS_PER_SEC = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured throughput."""

    name: str
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class BackboneResult:
    """Every figure of one bench run, measured against the same broker."""

    record_bytes: int
    liveward_produce: Figure
    raw_produce: Figure
    java_produce: Figure | None
    liveward_consume: Figure
    raw_consume: Figure

    def ratio(self, ours: Figure, baseline: Figure | None) -> float | None:
        if baseline is None or baseline.per_second == 0:
            return None
        return ours.per_second / baseline.per_second


def sample_events(count: int, region: str) -> list[QoETelemetrySample]:
    """Single telemetry samples (what a batch on `qoe.telemetry` holds many of)."""
    start = now_ms()
    return [
        QoETelemetrySample(
            event_id=new_event_id(),
            occurred_at=start + i,
            region=region,
            session_ref=f"s{i % 5000:05d}",
            viewer_pseudonym=f"{i % 4999:064x}",
            pseudonym_epoch="2026-11-24",
            content_id="bench-live",
            cdn=("cdn-a", "cdn-b")[i % 2],
            serving_region=region,
            country="DE",
            subdivision="BE",
            sampled_at=start + i,
            bitrate_kbps=4500,
            buffer_ms=12_000,
            play_ms=1000,
            rebuffer_count=0,
            rebuffer_ms=0,
        )
        for i in range(count)
    ]


def _fresh_topic(settings: Settings, prefix: str, partitions: int) -> str:
    name = f"bench.{prefix}.{new_event_id()[:8]}"
    admin = admin_client(settings)
    replication = settings.kafka.replication_factor
    admin.create_topics([NewTopic(name, partitions, replication)])[name].result()
    return name


def raw_produce(
    settings: Settings,
    topic: str,
    records: list[tuple[bytes, bytes]],
    *,
    name: str = "raw confluent-kafka producer (same records, pre-encoded)",
    **tuning: Any,
) -> Figure:
    """The same keyed, pre-encoded records through a bare confluent-kafka producer: the
    baseline every producing bench measures against in the same run."""
    producer = Producer(producer_config(settings, **tuning))
    started = time.perf_counter()
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    return Figure(name, len(records), time.perf_counter() - started)


def _raw_consume(settings: Settings, topic: str, count: int) -> Figure:
    consumer = Consumer(consumer_config(settings, f"bench-raw-{new_event_id()}"))
    consumer.subscribe([topic])
    seen = 0
    started = None
    while seen < count:
        batch = consumer.consume(num_messages=1000, timeout=5.0)
        if started is None and batch:
            started = time.perf_counter()
        seen += sum(1 for m in batch if m.error() is None)
    consumer.close()
    return Figure("raw consume (no decode)", count, time.perf_counter() - (started or 0.0))


def _java_produce(settings: Settings, topic: str, count: int, record_bytes: int) -> Figure | None:
    argv = KafkaCluster(settings).tool_argv(
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic,
        "--num-records", str(count),
        "--record-size", str(record_bytes),
        "--throughput", "-1",
        "--producer-props",
        f"bootstrap.servers={settings.kafka.bootstrap_servers}",
        "acks=all", "enable.idempotence=true", "linger.ms=5", "compression.type=lz4",
    )  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    matches = _RECORDS_PER_SEC.findall(out.stdout)
    if not matches:
        return None
    sent, rate = matches[-1]
    return Figure("Kafka ProducerPerformance (Java)", int(sent), int(sent) / float(rate))


def run_backbone_bench(settings: Settings, count: int) -> BackboneResult:
    """Produce and consume count events each way; every figure from this one run."""
    codec = default_codec()
    partitions = CATALOG["qoe.telemetry"].partitions
    events = sample_events(count, settings.region)
    payloads = [codec.encode(e) for e in events[:1000]]
    record_bytes = sum(map(len, payloads)) // len(payloads)

    ours_topic = _fresh_topic(settings, "liveward", partitions)
    producer = EventProducer(settings)
    # The catalog's telemetry spec under the bench topic's name, the exact path services
    # use, for single samples keyed by session: the backbone's cost per record (the
    # telemetry topic itself carries a batch of samples per record).
    spec = dataclasses.replace(
        CATALOG["qoe.telemetry"], event_type=QoETelemetrySample, key_fields=("session_ref",)
    )
    bench_spec = dataclasses.replace(spec, name=ours_topic)
    started = time.perf_counter()
    producer.send_all(bench_spec, events, timeout=120)
    liveward_produce = Figure(
        "liveward codec + EventProducer (acks=all, confirmed)",
        count,
        time.perf_counter() - started,
    )

    raw_topic = _fresh_topic(settings, "raw", partitions)
    records = [(spec.key_of(e), codec.encode(e)) for e in events]
    raw_produce_figure = raw_produce(settings, raw_topic, records)

    java_topic = _fresh_topic(settings, "java", partitions)
    java_produce = _java_produce(settings, java_topic, count, record_bytes)

    consumer = EventConsumer(
        settings,
        [ours_topic],
        f"bench-{new_event_id()}",
        dead_letters=DeadLetterPublisher(producer, settings.region),
    )
    seen = 0
    consume_started = None
    while seen < count:
        batch = consumer.poll_batch(max_records=1000, timeout=5.0)
        if consume_started is None and batch:
            consume_started = time.perf_counter()
        seen += len(batch)
    consumer.close()
    liveward_consume = Figure(
        "liveward EventConsumer (decode to dataclasses)",
        count,
        time.perf_counter() - (consume_started or 0.0),
    )
    raw_consume = _raw_consume(settings, raw_topic, count)

    admin_client(settings).delete_topics([ours_topic, raw_topic, java_topic])
    return BackboneResult(
        record_bytes,
        liveward_produce,
        raw_produce_figure,
        java_produce,
        liveward_consume,
        raw_consume,
    )
