"""The typed event consumer: decodes batches, dead-letters what it cannot decode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from liveward.settings import Settings
from streams.codec import AvroCodec, AvroEvent, default_codec
from streams.deadletter import DeadLetterPublisher
from streams.errors import DecodeError, StreamsError


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """The confluent-kafka settings every liveward consumer shares (manual commits)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka.session_timeout_ms,
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return config


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    """A decoded event with where it came from."""

    event: AvroEvent
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class EventConsumer:
    """Polls batches of events; a record that does not decode is dead-lettered, never dropped.

    Offsets are committed only by `commit()`, after the caller has handled a batch; the
    dead-letter publish is confirmed before `poll_batch` returns, so committing past a
    bad record never loses it.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        group_id: str,
        *,
        dead_letters: DeadLetterPublisher,
        codec: AvroCodec | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self._codec = codec or default_codec()
        self._group_id = group_id
        self._dead_letters = dead_letters
        self._consumer = Consumer(consumer_config(settings, group_id, **(config or {})))
        self._consumer.subscribe(list(topics))
        self._positions: dict[tuple[str, int], int] = {}
        self.dead_lettered = 0

    def poll_batch(self, max_records: int = 500, timeout: float = 1.0) -> list[ConsumedEvent]:
        """Up to max_records decoded events; bad records go to the dead-letter topic."""
        messages = self._consumer.consume(num_messages=max_records, timeout=timeout)
        events: list[ConsumedEvent] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if not error.fatal():
                    continue  # partition EOF, a topic not yet created: librdkafka retries
                raise StreamsError(f"consumer failed: {error.str()}", reason="consumer-fatal")
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None
            self._positions[(topic, partition)] = offset + 1
            value = message.value()
            if value is None:
                continue  # a tombstone on a compacted topic: nothing to decode
            try:
                event = self._codec.decode(value)
            except DecodeError as exc:
                self._dead_letter(message, exc.reason, str(exc))
                continue
            _ts_type, ts = message.timestamp()
            events.append(ConsumedEvent(event, message.key(), topic, partition, offset, ts))
        return events

    def _dead_letter(self, message: Message, reason: str, detail: str) -> None:
        self._dead_letters.publish(
            source_topic=message.topic() or "",
            source_partition=message.partition() or 0,
            source_offset=message.offset() or 0,
            key=message.key(),
            value=message.value(),
            reason_code=reason,
            reason_detail=detail,
            consumer=self._group_id,
        )
        self.dead_lettered += 1

    def commit(self) -> None:
        """Commit the position after every record returned (or dead-lettered) so far."""
        if not self._positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._positions.items()]
        self._consumer.commit(offsets=offsets, asynchronous=False)
        self._positions.clear()

    def pause_all(self) -> None:
        self._consumer.pause(self._consumer.assignment())

    def resume_all(self) -> None:
        self._consumer.resume(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close()
