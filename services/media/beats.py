"""Heartbeats and manifest state on Kafka, sent from a background thread that never blocks media.

Segment production must not wait for Kafka: events are offered to a `StatePublisher`,
which keeps only the newest event per slot (a heartbeat or a manifest state that was
overtaken is worth nothing) and sends them with acks=all on its own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from liveward.settings import Settings
from streams.codec import AvroEvent
from streams.errors import StreamsError
from streams.events import IngestHealth, IngestRole, IngestStatus, PackagerManifestState
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer

log = logging.getLogger(__name__)

HEALTH_TOPIC = "ingest.health"
MANIFEST_TOPIC = "ingest.manifest-state"
SEND_TIMEOUT_S = 5.0


class StatePublisher:
    """Sends the newest offered event of each slot to its topic; drops overtaken ones.

    `sent`, `overtaken` and `failed` count what happened; they are logged at close.
    """

    def __init__(self, settings: Settings, *, producer: EventProducer | None = None) -> None:
        self._producer = producer or EventProducer(settings, config={"linger.ms": 1})
        self._pending: dict[str, tuple[str, AvroEvent]] = {}
        self._wake = threading.Condition()
        self._closing = False
        self.sent = 0
        self.overtaken = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="state-publisher", daemon=True)
        self._thread.start()

    def offer(self, slot: str, topic: str, event: AvroEvent) -> None:
        with self._wake:
            if slot in self._pending:
                self.overtaken += 1
            self._pending[slot] = (topic, event)
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if not self._pending and self._closing:
                    return
                batch = list(self._pending.values())
                self._pending.clear()
            by_topic: dict[str, list[AvroEvent]] = {}
            for topic, event in batch:
                by_topic.setdefault(topic, []).append(event)
            for topic, events in by_topic.items():
                try:
                    self._producer.send_all(topic, events, timeout=SEND_TIMEOUT_S)
                    self.sent += len(events)
                except StreamsError as exc:
                    self.failed += len(events)
                    log.warning("%d events to %s not stored: %s", len(events), topic, exc)

    def close(self) -> None:
        """Send what is pending, then stop the thread and the producer."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout=SEND_TIMEOUT_S + 1)
        self._producer.close()
        log.info(
            "published %d events (%d overtaken before sending, %d not stored)",
            self.sent,
            self.overtaken,
            self.failed,
        )


def health_event(
    *,
    region: str,
    source_id: str,
    role: IngestRole,
    content_id: str,
    beat_seq: int,
    last_segment_seq: int,
    last_segment_at_ms: int,
    status: IngestStatus,
) -> IngestHealth:
    return IngestHealth(
        event_id=new_event_id(),
        occurred_at=now_ms(),
        region=region,
        source_id=source_id,
        role=role,
        content_id=content_id,
        beat_seq=beat_seq,
        last_segment_seq=last_segment_seq,
        last_segment_at=last_segment_at_ms,
        status=status,
    )


BEAT_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class Beat:
    """What a source says of one content in a heartbeat."""

    content_id: str
    last_segment_seq: int
    last_segment_at_ms: int
    status: IngestStatus


class HealthBeats:
    """A source's heartbeats: one `IngestHealth` per content every `interval_s`, numbered."""

    def __init__(
        self,
        publisher: StatePublisher,
        *,
        region: str,
        source_id: str,
        role: IngestRole,
        interval_s: float = BEAT_INTERVAL_S,
        start_at: float = 0.0,
    ) -> None:
        self._publisher = publisher
        self._region = region
        self._source_id = source_id
        self._role = role
        self._interval_s = interval_s
        self.seq = 0
        self.next_at = start_at

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def send(self, now: float, beats: Iterable[Beat]) -> None:
        """Offer one heartbeat per content, then schedule the next."""
        for beat in beats:
            self._publisher.offer(
                f"health|{beat.content_id}",
                HEALTH_TOPIC,
                health_event(
                    region=self._region,
                    source_id=self._source_id,
                    role=self._role,
                    content_id=beat.content_id,
                    beat_seq=self.seq,
                    last_segment_seq=beat.last_segment_seq,
                    last_segment_at_ms=beat.last_segment_at_ms,
                    status=beat.status,
                ),
            )
        self.seq += 1
        self.next_at = max(self.next_at + self._interval_s, now)


def lag_status(newest_due: int, last_produced: int) -> IngestStatus:
    """OK when the newest due segment is there, DEGRADED one behind, FAILING further behind."""
    behind = newest_due - last_produced
    if behind <= 0:
        return IngestStatus.OK
    if behind == 1:
        return IngestStatus.DEGRADED
    return IngestStatus.FAILING


def manifest_key(content_id: str, region: str) -> str:
    """The compacted topic's key of (content, region), as the catalog builds it."""
    return f"{content_id}|{region}"


def manifest_event(
    *,
    region: str,
    content_id: str,
    packager_id: str,
    media_sequence: int,
    last_segment_seq: int,
    discontinuity_sequence: int,
    target_duration_ms: int,
    segment_count: int,
) -> PackagerManifestState:
    return PackagerManifestState(
        event_id=new_event_id(),
        occurred_at=now_ms(),
        region=region,
        content_id=content_id,
        packager_id=packager_id,
        media_sequence=media_sequence,
        last_segment_seq=last_segment_seq,
        discontinuity_sequence=discontinuity_sequence,
        target_duration_ms=target_duration_ms,
        segment_count=segment_count,
    )
