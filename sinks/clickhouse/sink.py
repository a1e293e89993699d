"""The ClickHouse sink: rows buffered per Kafka partition, written per table, then committable.

The shape follows quix-streams' batching sink: `add()` collects, `flush()` hands each
table's rows to `write(batch)`, and only after `write` returns are that batch's offsets
committable. When ClickHouse is down or slow `write` raises `SinkBackpressure`; the rows
stay buffered, so the next `flush()` writes them again (with anything added since).
A write that failed half-way may have landed: the tables deduplicate on `event_id`
(ReplacingMergeTree), so reads with `FINAL` or `uniqExact(event_id)` count it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sinks.clickhouse.backends import ClickHouseBackend
from sinks.clickhouse.tables import DEFAULT_ROUTES, TableMapping
from sinks.errors import (
    ClickHouseQueryError,
    ClickHouseUnavailable,
    RecordRejected,
    SinkBackpressure,
    SinkWriteFailed,
)

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class PartitionBuffer:
    """Rows taken from one topic partition and not yet written."""

    mapping: TableMapping
    # The offset to commit once these rows are written: one past the last record seen.
    next_offset: int
    rows: list[tuple[object, ...]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SinkBatch:
    """Rows for one table, and the partition offsets that become committable when they land."""

    mapping: TableMapping
    rows: list[tuple[object, ...]]
    offsets: dict[TopicPartition, int]


class ClickHouseSink:
    """Buffers events per partition and inserts them into their tables in batches.

    `routes` says which table each topic's events go to. Not thread-safe: one runner
    drives it.
    """

    def __init__(
        self,
        backend: ClickHouseBackend,
        routes: Mapping[str, TableMapping] = DEFAULT_ROUTES,
        *,
        retry_after: float = 0.5,
    ) -> None:
        self.backend = backend
        self.routes = dict(routes)
        self.retry_after = retry_after
        self._buffers: dict[TopicPartition, PartitionBuffer] = {}
        self._committable: dict[TopicPartition, int] = {}

    @property
    def buffered(self) -> int:
        """Rows waiting to be written."""
        return sum(len(b.rows) for b in self._buffers.values())

    @property
    def pending(self) -> bool:
        """True if a flush has rows to write or offsets to advance."""
        return bool(self._buffers)

    def add(
        self, record: Mapping[str, Any] | object, topic: str, partition: int, offset: int
    ) -> None:
        """Buffer the row(s) of record (a mapping of its schema's fields, or an event
        dataclass; a `qoe.telemetry` batch gives a row per sample).

        Raises RecordRejected, without buffering anything, if the topic has no table or
        the record does not fit its rows; the caller dead-letters it and calls `skip`.
        """
        mapping = self.routes.get(topic)
        if mapping is None:
            raise RecordRejected(f"no ClickHouse table is routed for topic {topic}")
        rows = mapping.rows(record)
        self._advance(topic, partition, mapping, offset).rows.extend(rows)

    def skip(self, topic: str, partition: int, offset: int) -> None:
        """Move past a record that produces no row (dead-lettered, or a tombstone)."""
        mapping = self.routes.get(topic)
        if mapping is None:
            # Nothing of this topic can be buffered, so its position is committable at once.
            self._committable[(topic, partition)] = offset + 1
            return
        self._advance(topic, partition, mapping, offset)

    def batches(self) -> list[SinkBatch]:
        """What a flush would write now: one batch per table, spanning its partitions."""
        by_table: dict[str, SinkBatch] = {}
        for key, buffer in self._buffers.items():
            batch = by_table.setdefault(buffer.mapping.table, SinkBatch(buffer.mapping, [], {}))
            batch.rows.extend(buffer.rows)
            batch.offsets[key] = buffer.next_offset
        return list(by_table.values())

    def flush(self) -> int:
        """Write every buffered row; returns how many. On SinkBackpressure nothing is lost.

        Tables written before a failure stay written and their offsets committable; the
        rest stay buffered for the next flush.
        """
        written = 0
        for batch in self.batches():
            self.write(batch)
            written += len(batch.rows)
            for key, next_offset in batch.offsets.items():
                del self._buffers[key]
                self._committable[key] = next_offset
        return written

    def write(self, batch: SinkBatch) -> None:
        """Insert one batch. SinkBackpressure if ClickHouse is down or overloaded,
        SinkWriteFailed if it refuses the rows for good."""
        try:
            self.backend.insert(batch.mapping.table, batch.mapping.column_names, batch.rows)
        except ClickHouseUnavailable as exc:
            raise SinkBackpressure(str(exc), retry_after=self.retry_after) from exc
        except ClickHouseQueryError as exc:
            raise SinkWriteFailed(
                f"{self.backend.name} ClickHouse refused {len(batch.rows)} rows for "
                f"{batch.mapping.table}: {exc}"
            ) from exc

    def take_committable(self) -> dict[TopicPartition, int]:
        """Offsets (next to read) whose records are all written; each is handed out once."""
        committable, self._committable = self._committable, {}
        return committable

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget partitions this consumer lost: their next owner reads them again."""
        for key in partitions:
            self._buffers.pop(key, None)
            self._committable.pop(key, None)

    def _advance(
        self, topic: str, partition: int, mapping: TableMapping, offset: int
    ) -> PartitionBuffer:
        """The partition's buffer, its next offset moved past offset."""
        key = (topic, partition)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = PartitionBuffer(mapping, offset + 1)
        else:
            buffer.next_offset = offset + 1
        return buffer
