"""ClickHouseSink buffering: what is written when, and which offsets become committable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.tables import DEFAULT_ROUTES, INGEST_HEALTH_BEATS, QOE_TELEMETRY_SAMPLES
from sinks.errors import (
    ClickHouseQueryError,
    ClickHouseUnavailable,
    RecordRejected,
    SinkBackpressure,
    SinkWriteFailed,
)

QOE = "qoe.telemetry"
HEALTH = "ingest.health"


class RecordingBackend:
    """Stands in for ClickHouse in pure tests: keeps inserts, can be made to refuse them."""

    name = "recording"
    database = "liveward"

    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[Sequence[Any]]]] = []
        self.down_tables: set[str] = set()
        self.broken = False

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        return []

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if table in self.down_tables:
            raise ClickHouseUnavailable("connection refused")
        if self.broken:
            raise ClickHouseQueryError("Code: 53. Type mismatch")
        if rows:
            self.inserts.append((table, list(rows)))
        return len(rows)

    def close(self) -> None:
        pass

    def rows(self, table: str) -> list[Sequence[Any]]:
        return [row for name, rows in self.inserts if name == table for row in rows]


def beat(seq: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": f"beat-{seq}",
        "occurred_at": 1_700_000_000_000 + seq,
        "region": "eu-west",
        "source_id": "packager-1",
        "role": "PACKAGER",
        "content_id": "live-1",
        "beat_seq": seq,
        "last_segment_seq": seq - 1,
        "last_segment_at": 1_700_000_000_000,
        "status": "OK",
    }
    record.update(overrides)
    return record


def sample(n: int) -> dict[str, Any]:
    return {
        "event_id": f"qoe-{n}",
        "occurred_at": 1_700_000_000_000 + n,
        "region": "eu-west",
        "session_ref": "s1",
        "viewer_pseudonym": "p1",
        "pseudonym_epoch": "e1",
        "content_id": "live-1",
        "cdn": "cdn-a",
        "serving_region": "eu-west",
        "country": "NL",
        "subdivision": "",
        "sampled_at": 1_700_000_000_000 + n,
        "bitrate_kbps": 3000,
        "buffer_ms": 8000,
        "play_ms": 1000,
        "rebuffer_count": 0,
        "rebuffer_ms": 0,
    }


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def sink(backend: RecordingBackend) -> ClickHouseSink:
    return ClickHouseSink(backend, DEFAULT_ROUTES, retry_after=0.25)


def test_nothing_is_written_or_committable_before_a_flush(
    sink: ClickHouseSink, backend: RecordingBackend
) -> None:
    sink.add(beat(1), HEALTH, 0, 10)
    sink.add(beat(2), HEALTH, 1, 20)

    assert sink.buffered == 2
    assert backend.inserts == []
    assert sink.take_committable() == {}


def test_a_flush_writes_one_insert_per_table_and_makes_offsets_committable(
    sink: ClickHouseSink, backend: RecordingBackend
) -> None:
    sink.add(beat(1), HEALTH, 0, 10)
    sink.add(beat(2), HEALTH, 0, 11)
    sink.add(beat(3), HEALTH, 1, 20)
    sink.add(sample(1), QOE, 4, 7)

    assert sink.flush() == 4

    assert sorted(table for table, _ in backend.inserts) == [
        INGEST_HEALTH_BEATS.table,
        QOE_TELEMETRY_SAMPLES.table,
    ]
    assert [row[0] for row in backend.rows(INGEST_HEALTH_BEATS.table)] == [
        "beat-1",
        "beat-2",
        "beat-3",
    ]
    assert sink.take_committable() == {(HEALTH, 0): 12, (HEALTH, 1): 21, (QOE, 4): 8}
    assert sink.buffered == 0
    assert not sink.pending


def test_committable_offsets_are_handed_out_once(sink: ClickHouseSink) -> None:
    sink.add(beat(1), HEALTH, 0, 10)
    sink.flush()

    assert sink.take_committable() == {(HEALTH, 0): 11}
    assert sink.take_committable() == {}


def test_backpressure_keeps_rows_and_offsets_until_a_later_flush_lands(
    sink: ClickHouseSink, backend: RecordingBackend
) -> None:
    backend.down_tables.add(INGEST_HEALTH_BEATS.table)
    sink.add(beat(1), HEALTH, 0, 10)

    with pytest.raises(SinkBackpressure) as refused:
        sink.flush()

    assert refused.value.retry_after == 0.25
    assert sink.take_committable() == {}
    assert sink.buffered == 1

    sink.add(beat(2), HEALTH, 0, 11)
    backend.down_tables.clear()
    assert sink.flush() == 2
    assert [row[0] for row in backend.rows(INGEST_HEALTH_BEATS.table)] == ["beat-1", "beat-2"]
    assert sink.take_committable() == {(HEALTH, 0): 12}


def test_a_table_written_before_a_refusal_stays_committable(
    sink: ClickHouseSink, backend: RecordingBackend
) -> None:
    backend.down_tables.add(QOE_TELEMETRY_SAMPLES.table)
    sink.add(beat(1), HEALTH, 0, 10)
    sink.add(sample(1), QOE, 2, 5)

    with pytest.raises(SinkBackpressure):
        sink.flush()

    assert sink.take_committable() == {(HEALTH, 0): 11}
    assert sink.buffered == 1


def test_skipped_records_advance_the_offset_without_a_row(
    sink: ClickHouseSink, backend: RecordingBackend
) -> None:
    sink.add(beat(1), HEALTH, 0, 10)
    sink.skip(HEALTH, 0, 11)
    sink.skip(HEALTH, 3, 40)

    assert sink.flush() == 1
    assert sink.take_committable() == {(HEALTH, 0): 12, (HEALTH, 3): 41}
    assert len(backend.rows(INGEST_HEALTH_BEATS.table)) == 1


def test_a_record_that_does_not_fit_is_rejected_without_touching_the_buffer(
    sink: ClickHouseSink,
) -> None:
    sink.add(beat(1), HEALTH, 0, 10)

    with pytest.raises(RecordRejected):
        sink.add(beat(2, beat_seq="two"), HEALTH, 0, 11)

    sink.flush()
    assert sink.take_committable() == {(HEALTH, 0): 11}


def test_a_topic_without_a_table_is_rejected(sink: ClickHouseSink) -> None:
    with pytest.raises(RecordRejected, match="no ClickHouse table"):
        sink.add(beat(1), "auth.tokens-issued", 0, 0)


def test_a_refused_statement_is_a_write_failure_not_backpressure(
    sink: ClickHouseSink, backend: RecordingBackend
) -> None:
    backend.broken = True
    sink.add(beat(1), HEALTH, 0, 10)

    with pytest.raises(SinkWriteFailed):
        sink.flush()
    assert sink.take_committable() == {}


def test_dropped_partitions_are_forgotten(sink: ClickHouseSink, backend: RecordingBackend) -> None:
    sink.add(beat(1), HEALTH, 0, 10)
    sink.add(beat(2), HEALTH, 1, 20)

    sink.drop([(HEALTH, 0)])
    sink.flush()

    assert [row[0] for row in backend.rows(INGEST_HEALTH_BEATS.table)] == ["beat-2"]
    assert sink.take_committable() == {(HEALTH, 1): 21}
