"""The loop moving events from Kafka into the ClickHouse sink, committing only what landed.

Records are decoded by the injected `decode` callable; a record that does not decode or
does not fit its table goes to the injected `on_bad_record` (which must have persisted
it, e.g. to the dead-letter topic, before it returns) and is then passed over. The sink
flushes when `flush_rows` rows are buffered or `flush_interval` seconds have passed;
offsets go to Kafka only after the flush wrote them. On `SinkBackpressure` the runner
pauses its partitions, waits on a capped exponential schedule, retries the same rows,
and resumes once they land.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from liveward.settings import Settings
from sinks.backoff import Backoff
from sinks.clickhouse.sink import ClickHouseSink
from sinks.errors import RecordRejected, SinkBackpressure, SinkError
from streams.consumer import consumer_config

log = logging.getLogger(__name__)

Decode = Callable[[bytes], Mapping[str, Any] | object]


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record the sink cannot store, with where it came from and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str


@dataclass(slots=True)
class RunnerStats:
    """What the runner has done so far, for logs, `/metrics` and tests."""

    consumed: int = 0
    written: int = 0
    bad_records: int = 0
    commits: int = 0
    backpressure: int = 0
    # Offsets (next to read) committed to Kafka, per (topic, partition).
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


class SinkRunner:
    """Consumes `topics` as `group_id` and feeds a ClickHouseSink; one thread drives it."""

    def __init__(
        self,
        settings: Settings,
        sink: ClickHouseSink,
        *,
        topics: Sequence[str],
        group_id: str,
        decode: Decode,
        on_bad_record: Callable[[BadRecord], None],
        flush_rows: int = 20_000,
        flush_interval: float = 1.0,
        max_poll_records: int = 5_000,
        poll_timeout: float = 0.2,
        backoff: Backoff | None = None,
        consumer_overrides: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.decode = decode
        self.on_bad_record = on_bad_record
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        self.max_poll_records = max_poll_records
        self.poll_timeout = poll_timeout
        self.backoff = backoff or Backoff()
        self.stats = RunnerStats()
        self._clock = clock
        self._last_flush = clock()
        self._attempts = 0
        self._retry_at: float | None = None
        # Offsets are committed by hand, and only after ClickHouse took the rows.
        self._consumer = Consumer(
            consumer_config(settings, group_id, **dict(consumer_overrides or {}))
        )
        self._consumer.subscribe(list(topics), on_revoke=self._on_revoke)

    @property
    def backing_off(self) -> bool:
        """True while a write was refused and its retry is still pending."""
        return self._retry_at is not None

    def run(self, stop: threading.Event) -> None:
        """Step until stop is set, then flush and commit what it can, and close the consumer."""
        try:
            while not stop.is_set():
                self.step()
            if not self.backing_off:
                self._flush_and_commit()
        finally:
            self.close()

    def step(self) -> None:
        """One turn: retry a refused flush when due, else poll, buffer, and flush if it is time."""
        if self._retry_at is not None:
            remaining = self._retry_at - self._clock()
            if remaining > 0:
                # Partitions are paused: this only keeps the group membership alive.
                self._consume(timeout=min(remaining, self.poll_timeout))
                return
            self._flush_and_commit()
            return
        self._consume(timeout=self.poll_timeout)
        due = self._clock() - self._last_flush >= self.flush_interval
        if self.sink.buffered >= self.flush_rows or (due and self.sink.pending):
            self._flush_and_commit()
        elif due:
            self._last_flush = self._clock()

    def close(self) -> None:
        self._consumer.close()

    def _consume(self, timeout: float) -> None:
        for message in self._consumer.consume(num_messages=self.max_poll_records, timeout=timeout):
            self._handle(message)

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise SinkError(f"Kafka consumer failed: {error.str()}", reason="consumer-fatal")
            log.warning("Kafka consumer: %s", error.str())
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        self.stats.consumed += 1
        value = message.value()
        if value is None:
            self.sink.skip(topic, partition, offset)  # a tombstone carries no event
            return
        try:
            record = self.decode(value)
        except Exception as exc:  # the decoder is injected: whatever it raises means undecodable
            self._reject(message, getattr(exc, "reason", "decode-error"), str(exc))
            return
        try:
            self.sink.add(record, topic, partition, offset)
        except RecordRejected as exc:
            self._reject(message, exc.reason, str(exc))

    def _reject(self, message: Message, reason: str, detail: str) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        self.on_bad_record(
            BadRecord(topic, partition, offset, message.key(), message.value(), reason, detail)
        )
        self.stats.bad_records += 1
        self.sink.skip(topic, partition, offset)

    def _flush_and_commit(self) -> None:
        try:
            self.stats.written += self.sink.flush()
        except SinkBackpressure as exc:
            self._back_off(exc)
        else:
            if self._retry_at is not None:
                log.info("ClickHouse accepts writes again after %d attempt(s)", self._attempts)
                self._consumer.resume(self._consumer.assignment())
            self._attempts = 0
            self._retry_at = None
        finally:
            # Tables written before a refusal are committable even when a later one failed.
            self._commit()
            self._last_flush = self._clock()

    def _back_off(self, exc: SinkBackpressure) -> None:
        self._attempts += 1
        self.stats.backpressure += 1
        delay = self.backoff.delay(self._attempts, exc.retry_after)
        log.warning(
            "ClickHouse pushes back (attempt %d, retry in %.1f s, %d rows held): %s",
            self._attempts,
            delay,
            self.sink.buffered,
            exc,
        )
        self._retry_at = self._clock() + delay
        # Paused each time, so partitions assigned since the last refusal stop too.
        self._consumer.pause(self._consumer.assignment())

    def _commit(self) -> None:
        offsets = self.sink.take_committable()
        if not offsets:
            return
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            # The rows are written; whoever reads these offsets again is deduplicated.
            log.warning("committing %s failed, they will be read again: %s", offsets, exc)
            return
        self.stats.commits += 1
        self.stats.committed.update(offsets)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Last chance to commit what this consumer holds before another one takes over.
        if not self.backing_off:
            try:
                self.stats.written += self.sink.flush()
            except SinkBackpressure as exc:
                log.warning("could not flush before a rebalance: %s", exc)
        self._commit()
        self.sink.drop((p.topic, p.partition) for p in partitions)
