"""The typed event producer: idempotent, acks=all, "accepted" only after Kafka confirms."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from liveward.settings import Settings
from streams.catalog import CATALOG, TopicCatalog, TopicSpec
from streams.codec import AvroCodec, AvroEvent, default_codec
from streams.errors import DeliveryFailed, ProducerBackpressure


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The confluent-kafka settings every liveward producer shares."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        # The Java client's partitioner, so aiokafka (Faust) and confluent-kafka agree on
        # which partition a key lives in; Faust tables rely on that.
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": 30_000,
        "client.id": f"liveward-{settings.region}",
        "log_level": 3,  # librdkafka warnings (transient coordinator loads) are noise here
    }
    config.update(overrides)
    return config


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where Kafka stored a record."""

    topic: str
    partition: int
    offset: int


class _Pending:
    """Counts outstanding deliveries of one send and collects the failures, and where each
    record landed when `keep_delivered` (`send_raw`; `send_counted` keeps only the count).

    One bound method serves as every record's delivery callback: no closure per record.
    """

    def __init__(self, expected: int, *, keep_delivered: bool = True) -> None:
        self.keep_delivered = keep_delivered
        self.remaining = expected
        self.delivered: list[Delivered] = []
        self.errors: list[str] = []
        self.done = threading.Event()
        self._lock = threading.Lock()
        if expected == 0:
            self.done.set()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            self._record(err, msg)

    def _record(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err.str()}")
        elif self.keep_delivered:
            self.delivered.append(
                Delivered(msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
            )
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()


class EventProducer:
    """Encodes events with the Avro codec and produces them to their catalog topics.

    `send_all` returns only when every record is acknowledged by all in-sync replicas,
    or raises DeliveryFailed; `ProducerBackpressure` means the local queue is full.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        codec: AvroCodec | None = None,
        catalog: TopicCatalog = CATALOG,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._codec = codec or default_codec()
        self._catalog = catalog
        self._producer = Producer(producer_config(settings, **(config or {})))
        # One thread serves every delivery callback, so callers on any thread (an HTTP
        # handler pool) just wait on their own batch; nobody sleeps in someone else's poll.
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._serve_callbacks, daemon=True)
        self._poller.start()

    def _serve_callbacks(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    @property
    def codec(self) -> AvroCodec:
        return self._codec

    def send_all(
        self,
        topic: str | TopicSpec,
        events: Sequence[AvroEvent],
        *,
        timeout: float = 30.0,
    ) -> list[Delivered]:
        """Produce events to topic and wait for every acknowledgement."""
        spec = topic if isinstance(topic, TopicSpec) else self._catalog[topic]
        records = [(spec.key_of(event), self._codec.encode(event)) for event in events]
        return self.send_raw(spec.name, records, timeout=timeout)

    def send_raw(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None]],
        *,
        timeout: float = 30.0,
    ) -> list[Delivered]:
        """Produce already-encoded (key, value) pairs and wait for every acknowledgement.

        Returns where each record landed, in acknowledgement order.
        A value of None is a tombstone (deletes the key on a compacted topic).
        """
        batch = list(records)
        pending = _Pending(len(batch))
        for key, value in batch:
            self._produce(topic, key, value, pending.on_delivery)
        self._wait(pending, timeout)
        if pending.errors:
            raise DeliveryFailed(
                f"{len(pending.errors)} of {len(batch)} records not stored: {pending.errors[0]}"
            )
        return pending.delivered

    def send_counted(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
        *,
        timeout: float = 30.0,
    ) -> int:
        """As `send_raw`, for callers that need only "every record is stored": returns the
        count. Keeping no per-record outcome halves the Python work per record (the
        telemetry bridge sends ~100k records a second)."""
        pending = _Pending(len(records), keep_delivered=False)
        produce = self._produce
        callback = pending.on_delivery
        for key, value in records:
            produce(topic, key, value, callback)
        self._wait(pending, timeout)
        if pending.errors:
            raise DeliveryFailed(
                f"{len(pending.errors)} of {len(records)} records not stored: {pending.errors[0]}"
            )
        return len(records)

    def send(self, topic: str | TopicSpec, event: AvroEvent, *, timeout: float = 30.0) -> Delivered:
        return self.send_all(topic, [event], timeout=timeout)[0]

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, callback: Any) -> None:
        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=callback)
        except BufferError:
            # Serve callbacks to free room once, then report backpressure rather than block.
            self._producer.poll(0.05)
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
            except BufferError as exc:
                raise ProducerBackpressure("producer queue is full", retry_after=0.5) from exc
        except KafkaException as exc:
            raise DeliveryFailed(f"{topic}: {exc}") from exc

    def _wait(self, pending: _Pending, timeout: float) -> None:
        if not pending.done.wait(timeout):
            raise DeliveryFailed(
                f"{pending.remaining} records not acknowledged within {timeout:.0f}s"
            )

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for everything in flight; returns how many records are still queued."""
        return int(self._producer.flush(timeout))

    def close(self) -> None:
        self.flush()
        self._closing.set()
        self._poller.join(timeout=1.0)
