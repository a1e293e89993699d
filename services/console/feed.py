"""The console's inputs: a Kafka consumer thread and a CDN edge prober, folding into one state.

The consumer uses a new group per start and assigns partitions itself: compacted topics
(steering, the latest decisions, key epochs) from their beginning, the others from
`history_s` back, so a page opened now already shows the recent past. Records that do not
decode are counted and skipped: the console reads, it never dead-letters others' topics.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from liveward.settings import Settings
from liveward.topology import pathways
from services.console.state import ConsoleState, Topology, fold, observe_probe, snapshot
from streams.codec import AvroCodec, default_codec
from streams.consumer import consumer_config
from streams.errors import DecodeError
from streams.meta import now_ms

log = logging.getLogger(__name__)

# Topic -> read from the beginning (compacted state) rather than `history_s` back.
TOPICS: dict[str, bool] = {
    "ingest.health": False,
    "control.steering": True,
    "control.failover": True,
    "control.commands": False,
    "control.command-outcomes": False,
    "auth.revocations": False,
    "keys.rotations": False,
    "keys.epochs": True,
    "qoe.aggregates": False,
}
PROBE_TIMEOUT_S = 0.5


class ConsoleFeed:
    """Holds the folded state; `start()` begins following Kafka and probing the edges."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology | None = None,
        *,
        history_s: float = 600.0,
        probe_interval_s: float = 1.0,
        codec: AvroCodec | None = None,
    ) -> None:
        self._settings = settings
        self.topology = topology or Topology.of(settings)
        self._history_ms = round(history_s * 1000)
        self._probe_interval_s = probe_interval_s
        self._codec = codec or default_codec()
        self._state = ConsoleState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self.undecodable = 0
        host = settings.services.host
        self._edges = {
            p.id: f"http://{host}:{p.edge_port}/healthz"
            for p in pathways(settings)
            if p.id in self.topology.pathways()
        }
        self._threads = [
            threading.Thread(target=self._consume, name="console-feed", daemon=True),
            threading.Thread(target=self._probe, name="console-probe", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)

    def ready(self) -> bool:
        """True once the consumer has its partitions (the page may still be catching up)."""
        return self._assigned.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._assigned.wait(timeout)

    def state(self) -> ConsoleState:
        with self._lock:
            return self._state

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.state(), self.topology, now_ms())

    def _consume(self) -> None:
        consumer = Consumer(
            consumer_config(
                self._settings, f"liveward-console-{uuid.uuid4().hex}", **{"fetch.wait.max.ms": 100}
            )
        )
        try:
            while not self._stop.is_set():
                try:
                    self._assign(consumer)
                    break
                except KafkaException as exc:
                    log.warning("console: cannot assign its topics yet: %s", exc)
                    self._stop.wait(1.0)
            while not self._stop.is_set():
                for message in consumer.consume(num_messages=1000, timeout=0.2):
                    if message.error() is not None or not message.value():
                        continue
                    try:
                        event = self._codec.decode(message.value() or b"")
                    except DecodeError:
                        self.undecodable += 1
                        continue
                    with self._lock:
                        self._state = fold(self._state, event)
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(timeout=10)
        since = now_ms() - self._history_ms
        partitions: list[TopicPartition] = []
        recent: list[TopicPartition] = []
        for topic, from_start in TOPICS.items():
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                log.warning("console: topic %s is missing; not followed", topic)
                continue
            for number in sorted(meta.partitions):
                if from_start:
                    partitions.append(TopicPartition(topic, number, OFFSET_BEGINNING))
                else:
                    recent.append(TopicPartition(topic, number, since))
        if recent:
            # offset -1 (no record after `since`) means: from the end.
            partitions += consumer.offsets_for_times(recent, timeout=10)
        consumer.assign(partitions)
        self._assigned.set()

    def _probe(self) -> None:
        with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                for pathway, url in self._edges.items():
                    ok, reason = _check(client, url)
                    with self._lock:
                        self._state = observe_probe(
                            self._state, pathway, ok=ok, at=now_ms(), reason=reason
                        )
                self._stop.wait(max(0.0, self._probe_interval_s - (time.monotonic() - began)))


def _check(client: httpx.Client, url: str) -> tuple[bool, str]:
    try:
        answer = client.get(url)
    except httpx.TimeoutException:
        return False, "timeout"
    except httpx.HTTPError:
        return False, "unreachable"
    if answer.status_code != 200:
        return False, f"http-{answer.status_code}"
    return True, ""
