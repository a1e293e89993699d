"""In-memory views of compacted topics: read from the start, then kept current on a thread."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from liveward.settings import Settings
from streams.codec import AvroCodec, AvroEvent, default_codec
from streams.consumer import consumer_config
from streams.errors import DecodeError, StreamsError

log = logging.getLogger(__name__)

E = TypeVar("E", bound=AvroEvent)


class CompactedTopicView(Generic[E]):
    """The latest event per key of a compacted topic, in memory.

    Every instance reads all partitions from the beginning (no consumer group: each
    process holds the whole view), applies tombstones as deletions, and stays current.
    `ready()` turns true once it has read up to the end offsets the topic had when it
    started. Records that do not decode as `event_type` are skipped and counted in
    `rejected` (the topic's writers own their quality; a view never stops on one).
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        event_type: type[E],
        *,
        codec: AvroCodec | None = None,
        on_change: Callable[[str, E | None], None] | None = None,
    ) -> None:
        self.topic = topic
        self._event_type = event_type
        self._codec = codec or default_codec()
        self._on_change = on_change
        self._entries: dict[str, E] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.rejected = 0
        self._consumer = Consumer(
            consumer_config(
                settings,
                f"view-{topic}-{uuid.uuid4().hex}",
                **{"fetch.wait.max.ms": 50, "enable.partition.eof": True},
            )
        )
        self._thread = threading.Thread(target=self._run, name=f"view-{topic}", daemon=True)
        self._pending_eof: set[int] = set()

    def start(self, timeout: float = 30.0) -> None:
        """Assign every partition from the beginning and start following the topic."""
        metadata = self._consumer.list_topics(self.topic, timeout=timeout)
        topic_meta = metadata.topics.get(self.topic)
        if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
            raise StreamsError(f"topic {self.topic} does not exist", reason="unknown-topic")
        partitions = sorted(topic_meta.partitions)
        self._pending_eof = set(partitions)
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def ready(self) -> bool:
        return self._ready.is_set()

    def get(self, key: str) -> E | None:
        with self._lock:
            return self._entries.get(key)

    def items(self) -> Iterator[tuple[str, E]]:
        with self._lock:
            return iter(list(self._entries.items()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=1000, timeout=0.1):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._pending_eof.discard(message.partition() or 0)
                        if not self._pending_eof:
                            self._ready.set()
                    elif error.fatal():
                        log.error("view of %s stopped: %s", self.topic, error.str())
                        return
                    continue
                self._apply(message.key(), message.value())

    def _apply(self, raw_key: bytes | None, value: bytes | None) -> None:
        key = (raw_key or b"").decode(errors="replace")
        event: E | None = None
        if value is not None:
            try:
                event = self._codec.decode_as(value, self._event_type)
            except DecodeError as exc:
                self.rejected += 1
                log.warning("view of %s skips key %r: %s", self.topic, key, exc)
                return
        with self._lock:
            if event is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = event
        if self._on_change is not None:
            self._on_change(key, event)
