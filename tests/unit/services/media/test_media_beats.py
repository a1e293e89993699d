"""Heartbeat status from lag, and the publisher that never lets Kafka hold up segments."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from liveward.settings import Settings
from services.media.beats import HEALTH_TOPIC, StatePublisher, health_event, lag_status
from streams.errors import DeliveryFailed
from streams.events import IngestHealth, IngestRole, IngestStatus


def test_status_follows_how_far_behind_the_newest_due_segment_is() -> None:
    assert lag_status(100, 100) is IngestStatus.OK
    assert lag_status(100, 101) is IngestStatus.OK
    assert lag_status(100, 99) is IngestStatus.DEGRADED
    assert lag_status(100, 97) is IngestStatus.FAILING
    assert lag_status(100, -1) is IngestStatus.FAILING


class SlowProducer:
    """Holds the first send until released, then records what it was given."""

    def __init__(self, *, fail: bool = False) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.sent: list[tuple[str, list[object]]] = []
        self.fail = fail

    def send_all(self, topic: str, events: Sequence[object], *, timeout: float) -> None:
        self.entered.set()
        self.release.wait(5)
        if self.fail:
            raise DeliveryFailed("broker gone")
        self.sent.append((topic, list(events)))

    def close(self) -> None:
        pass


def beat(seq: int) -> IngestHealth:
    return health_event(
        region="eu-west", source_id="eu-west/ingest", role=IngestRole.INGEST, content_id="m",
        beat_seq=seq, last_segment_seq=seq, last_segment_at_ms=0, status=IngestStatus.OK,
    )  # fmt: skip


def test_offers_never_wait_and_only_the_newest_per_slot_is_sent() -> None:
    producer = SlowProducer()
    publisher = StatePublisher(Settings(), producer=producer)  # type: ignore[arg-type]
    publisher.offer("health|m", HEALTH_TOPIC, beat(0))
    assert producer.entered.wait(5)  # the first send is stuck in Kafka...
    for seq in range(1, 6):  # ...while the process goes on beating
        publisher.offer("health|m", HEALTH_TOPIC, beat(seq))
    producer.release.set()
    publisher.close()
    assert [[e.beat_seq for e in events] for _, events in producer.sent] == [[0], [5]]  # type: ignore[attr-defined]
    assert (publisher.sent, publisher.overtaken, publisher.failed) == (2, 4, 0)


def test_a_failed_send_is_counted_and_the_publisher_goes_on() -> None:
    producer = SlowProducer(fail=True)
    producer.release.set()
    publisher = StatePublisher(Settings(), producer=producer)  # type: ignore[arg-type]
    publisher.offer("health|m", HEALTH_TOPIC, beat(0))
    publisher.close()
    assert (publisher.sent, publisher.failed) == (0, 1)
