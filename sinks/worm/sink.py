"""The license log sink: drm.licenses → the Merkle log; append, fsync, then commit the offsets.

Each turn polls a batch with `EventConsumer` (undecodable records go to the dead-letter
topic there), appends the batch's LicenseIssued events to the log (fsynced before
`append` returns), signs a checkpoint every `checkpoint_every` records or
`checkpoint_interval_s` seconds, and only then commits the Kafka offsets. A crash
anywhere before the commit re-delivers the batch; the log holds the Kafka offset of
every entry and skips records at or below the last one it holds, so a restart
continues the same log with no gap and no duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from liveward.settings import Settings
from sinks.backoff import Backoff
from sinks.worm.entries import LogEntry
from sinks.worm.errors import WormError
from sinks.worm.keys import default_log_dir, load_or_create_signing_key, signing_key_path
from sinks.worm.log import DEFAULT_SEGMENT_RECORDS, LocalLog, SealedFileReplica
from streams.codec import default_codec
from streams.consumer import ConsumedEvent, EventConsumer
from streams.deadletter import DeadLetterPublisher
from streams.errors import StreamsError
from streams.events import LicenseIssued
from streams.meta import now_ms
from streams.producer import EventProducer

log = logging.getLogger(__name__)

# What a turn may fail with and the sink survives by reopening: nothing was committed.
_RECOVERABLE = (WormError, StreamsError, KafkaException, OSError)

GROUP_ID = "liveward-license-log"
LICENSES_TOPIC = "drm.licenses"


def default_origin(settings: Settings) -> str:
    """The log's name in its checkpoints (and its key name): one log per region."""
    return f"liveward/license-log/{settings.region}"


@dataclass(slots=True)
class LicenseLogStats:
    """What the sink has done so far, for logs, `/metrics` and tests."""

    appended: int = 0
    # Records at or below the log's last offset: re-delivered after a crash or restart.
    skipped: int = 0
    dead_lettered: int = 0
    checkpoints: int = 0
    commits: int = 0
    failures: int = 0


class LicenseLogSink:
    """Runs the license log sink on a thread of its own: `start()`, then `stop()`.

    Opening takes the log's writer lock and verifies the log against its latest
    checkpoint (a log that fails is not extended: WormError). `stop()` finishes the
    batch in hand, signs a final checkpoint, commits, and closes everything.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        log_dir: Path | None = None,
        origin: str | None = None,
        group_id: str = GROUP_ID,
        topic: str = LICENSES_TOPIC,
        checkpoint_every: int = 1_000,
        checkpoint_interval_s: float = 10.0,
        segment_records: int = DEFAULT_SEGMENT_RECORDS,
        batch_size: int = 500,
        poll_timeout_s: float = 0.5,
        backoff: Backoff | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        replica: SealedFileReplica | None = None,
    ) -> None:
        self._settings = settings
        self._replica = replica
        self.log_dir = log_dir or default_log_dir(settings)
        self.origin = origin or default_origin(settings)
        self._group_id = group_id
        self._topic = topic
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self._segment_records = segment_records
        self._batch_size = batch_size
        self._poll_timeout_s = poll_timeout_s
        self._backoff = backoff or Backoff(initial=0.5, cap=30.0)
        self._monotonic = monotonic
        self._codec = default_codec()
        self._signing_key = load_or_create_signing_key(signing_key_path(settings))
        self.stats = LicenseLogStats()
        self._producer = EventProducer(settings)
        self._dead_letters = DeadLetterPublisher(self._producer, settings.region)
        self.log = self._open_log()
        self._consumer = self._open_consumer()
        self._unsigned = 0
        self._last_checkpoint_at = self._monotonic()
        self._closed = False
        self._producer_closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="license-log-sink", daemon=True
        )

    def _open_log(self) -> LocalLog:
        return LocalLog(
            self.log_dir,
            origin=self.origin,
            signing_key=self._signing_key,
            topic=self._topic,
            segment_records=self._segment_records,
            replica=self._replica,
        )

    def _open_consumer(self) -> EventConsumer:
        return EventConsumer(
            self._settings,
            [self._topic],
            self._group_id,
            dead_letters=self._dead_letters,
            codec=self._codec,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the batch in hand, sign a final checkpoint, commit, and close."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
            if self._thread.is_alive():
                # Closing under a turn still writing would race it; the lock dies with us.
                log.error("license log sink: the sink thread did not stop within 60 s")
                return
        self.close()

    def run(self, stop: threading.Event) -> None:
        """Step until stop is set (then call `close()`); a failure reopens log and consumer."""
        attempt = 0
        while not stop.is_set():
            try:
                self.step()
                attempt = 0
            except _RECOVERABLE as exc:
                attempt += 1
                self.stats.failures += 1
                delay = self._backoff.delay(attempt)
                log.error("license log sink: %s; reopening in %.1fs", exc, delay)
                # Uncommitted records come back from Kafka to the new consumer; the log
                # reopened from disk cuts a torn write and knows which offsets it holds.
                self._release(commit=False)
                if stop.wait(delay):
                    return
                self._reopen()

    def _reopen(self) -> None:
        try:
            self.log = self._open_log()
        except _RECOVERABLE as exc:
            log.error("license log sink: reopening the log failed: %s", exc)
            return
        try:
            self._consumer = self._open_consumer()
        except _RECOVERABLE as exc:
            self.log.close()  # or the next attempt would find its own writer lock held
            log.error("license log sink: reopening the consumer failed: %s", exc)
            return
        self._closed = False

    def step(self) -> int:
        """One turn: poll, append and fsync, maybe checkpoint, commit. Returns records appended."""
        if self._closed:
            raise WormError("the license log sink is closed", reason="sink-closed")
        batch = self._consumer.poll_batch(self._batch_size, timeout=self._poll_timeout_s)
        entries = [entry for event in batch if (entry := self._entry(event)) is not None]
        if entries:
            self.log.append(entries)
            self.stats.appended += len(entries)
            self._unsigned += len(entries)
        if self._unsigned and (
            self._unsigned >= self.checkpoint_every
            or self._monotonic() - self._last_checkpoint_at >= self.checkpoint_interval_s
        ):
            self._checkpoint()
        # After append (fsynced) and dead letters (confirmed): never ahead of the log.
        self._consumer.commit()
        self.stats.commits += 1
        return len(entries)

    def _entry(self, consumed: ConsumedEvent) -> LogEntry | None:
        event = consumed.event
        if not isinstance(event, LicenseIssued):
            self._dead_letters.publish(
                source_topic=consumed.topic,
                source_partition=consumed.partition,
                source_offset=consumed.offset,
                key=consumed.key,
                value=self._codec.encode(event),
                reason_code="wrong-event-type",
                reason_detail=f"expected {LicenseIssued.SCHEMA_NAME}, got {event.SCHEMA_NAME}",
                consumer=self._group_id,
            )
            self.stats.dead_lettered += 1
            return None
        if consumed.offset <= self.log.last_offset(consumed.partition):
            self.stats.skipped += 1
            return None
        # Re-encoded with the current schema: the consumer hands over the decoded event.
        value = self._codec.encode(event)
        return LogEntry(consumed.partition, consumed.offset, consumed.timestamp_ms, value)

    def _checkpoint(self) -> None:
        self.log.checkpoint(now_ms())
        self.stats.checkpoints += 1
        self._unsigned = 0
        self._last_checkpoint_at = self._monotonic()

    def _release(self, *, commit: bool) -> None:
        """Close the consumer and the log; with commit, sign and commit what was appended first."""
        if self._closed:
            return
        self._closed = True
        try:
            if commit:
                if self._unsigned:
                    self._checkpoint()
                self._consumer.commit()
        finally:
            try:
                self._consumer.close()
            except (RuntimeError, KafkaException) as exc:  # a consumer a failed turn broke
                log.warning("license log sink: closing the consumer: %s", exc)
            finally:
                self.log.close()

    def close(self) -> None:
        """Sign what is unsigned, commit, and close the consumer, the log and the producer."""
        try:
            self._release(commit=True)
        finally:
            if not self._producer_closed:
                self._producer_closed = True
                self._producer.close()
