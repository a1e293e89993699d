"""One contract for both ClickHouse backends: Debian's 18.16 server and embedded chdb 26.x.

`ClickHouseContract` holds the tests; each subclass only says how to open its backend.
Every test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liveward.settings import Settings
from sinks.clickhouse.backends import ClickHouseBackend, EmbeddedBackend, NativeBackend
from sinks.clickhouse.migrations import MIGRATIONS_TABLE, apply_migrations, load_migrations
from sinks.clickhouse.retention import drop_expired_partitions, list_partitions
from sinks.clickhouse.rollups import DERIVED_TABLES
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.tables import DEFAULT_ROUTES, INGEST_HEALTH_BEATS, QOE_TELEMETRY_SAMPLES
from sinks.errors import ClickHouseQueryError
from streams.events import IngestHealth, IngestRole, IngestStatus, QoETelemetrySample
from streams.telemetry import blocks_of

DAY_MS = 86_400_000


def with_database(settings: Settings, database: str) -> Settings:
    clickhouse = settings.clickhouse.model_copy(update={"database": database})
    return settings.model_copy(update={"clickhouse": clickhouse})


def sample(n: int, occurred_at: int, **overrides: Any) -> QoETelemetrySample:
    fields: dict[str, Any] = {
        "event_id": str(uuid.UUID(int=n)),
        "occurred_at": occurred_at,
        "region": "eu-west",
        "session_ref": f"session-{n % 7}",
        "viewer_pseudonym": f"viewer-{n % 11}",
        "pseudonym_epoch": "epoch-1",
        "content_id": "live-1",
        "cdn": "cdn-a",
        "serving_region": "eu-west",
        "country": "NL",
        "subdivision": "",
        "sampled_at": occurred_at - 5,
        "bitrate_kbps": 3000 + n,
        "buffer_ms": 8000,
        "play_ms": 1000,
        "rebuffer_count": n % 2,
        "rebuffer_ms": 100 * (n % 2),
    }
    fields.update(overrides)
    return QoETelemetrySample(**fields)


def beat(n: int, occurred_at: int) -> IngestHealth:
    return IngestHealth(
        event_id=f"beat-{n}",
        occurred_at=occurred_at,
        region="us-east",
        source_id="packager-2",
        role=IngestRole.PACKAGER,
        content_id="live-1",
        beat_seq=n,
        last_segment_seq=-1,
        last_segment_at=0,
        status=IngestStatus.DEGRADED,
    )


class ClickHouseContract:
    """Behaviour every ClickHouse backend must show; subclasses provide `open_backend`."""

    def open_backend(self, database: str) -> ClickHouseBackend:
        raise NotImplementedError

    @pytest.fixture
    def backend(self) -> Iterator[ClickHouseBackend]:
        backend = self.open_backend(f"contract_{uuid.uuid4().hex[:12]}")
        try:
            yield backend
        finally:
            backend.execute(f"DROP DATABASE IF EXISTS `{backend.database}`")
            backend.close()

    @pytest.fixture
    def migrated(self, backend: ClickHouseBackend) -> ClickHouseBackend:
        apply_migrations(backend)
        return backend

    def count(self, backend: ClickHouseBackend, table: str, clause: str = "") -> int:
        rows = backend.execute(f"SELECT count() FROM `{backend.database}`.{table} {clause}")
        return int(rows[0][0])

    def test_migrations_are_idempotent(self, backend: ClickHouseBackend) -> None:
        first = apply_migrations(backend)
        second = apply_migrations(backend)

        assert [m.version for m in first] == [m.version for m in load_migrations()]
        assert second == []
        tables = {row[0] for row in backend.execute(f"SHOW TABLES FROM `{backend.database}`")}
        routed = {m.table for m in DEFAULT_ROUTES.values()}
        assert tables == {MIGRATIONS_TABLE, *routed, *DERIVED_TABLES}
        assert self.count(backend, MIGRATIONS_TABLE) == len(first)

    def test_tables_have_exactly_the_mapped_columns(self, migrated: ClickHouseBackend) -> None:
        for mapping in DEFAULT_ROUTES.values():
            columns = migrated.execute(
                "SELECT name, type FROM system.columns "
                f"WHERE database = '{migrated.database}' AND table = '{mapping.table}'"
            )
            assert sorted(columns) == sorted((c.name, c.clickhouse_type) for c in mapping.columns)

    def test_rows_come_back_as_they_went_in(self, migrated: ClickHouseBackend) -> None:
        now = int(time.time() * 1000)
        events = [
            sample(1, now, startup_ms=850, exited_before_start=False, error_code=None),
            sample(2, now + 1, startup_ms=None, exited_before_start=True, error_code="E42"),
        ]
        mapping = QOE_TELEMETRY_SAMPLES

        written = migrated.insert(
            mapping.table, mapping.column_names, [mapping.row(e) for e in events]
        )

        assert written == 2
        stored = migrated.execute(
            f"SELECT {', '.join(mapping.column_names)} "
            f"FROM `{migrated.database}`.{mapping.table} FINAL ORDER BY event_id"
        )
        assert stored == [mapping.row(e) for e in events]

    def test_the_sink_lands_both_event_types(self, migrated: ClickHouseBackend) -> None:
        now = int(time.time() * 1000)
        sink = ClickHouseSink(migrated)
        # qoe.telemetry batches: a row per sample (10 requests of 5 samples each).
        requests = [[sample(5 * r + n, now + r) for n in range(5)] for r in range(10)]
        offset = 0
        for request in requests:
            for batch in blocks_of(request, 3):
                sink.add(batch, "qoe.telemetry", offset % 3, offset)
                offset += 1
        for n in range(50):
            sink.add(beat(n, now + n), "ingest.health", 0, n)

        assert sink.flush() == 100

        assert self.count(migrated, QOE_TELEMETRY_SAMPLES.table, "FINAL") == 50
        stored = migrated.execute(
            f"SELECT event_id, occurred_at, session_ref, bitrate_kbps "
            f"FROM `{migrated.database}`.{QOE_TELEMETRY_SAMPLES.table} FINAL ORDER BY event_id"
        )
        assert stored == sorted(
            (s.event_id, s.occurred_at, s.session_ref, s.bitrate_kbps)
            for request in requests
            for s in request
        )
        assert migrated.execute(
            f"SELECT role, status, count() FROM `{migrated.database}`.{INGEST_HEALTH_BEATS.table} "
            "FINAL GROUP BY role, status"
        ) == [("PACKAGER", "DEGRADED", 50)]

    def test_reinserting_a_batch_does_not_double_count(self, migrated: ClickHouseBackend) -> None:
        now = int(time.time() * 1000)
        mapping = QOE_TELEMETRY_SAMPLES
        rows = [mapping.row(sample(n, now - n * 3_600_000)) for n in range(200)]

        migrated.insert(mapping.table, mapping.column_names, rows)
        migrated.insert(mapping.table, mapping.column_names, rows)

        table = f"`{migrated.database}`.{mapping.table}"
        assert self.count(migrated, mapping.table, "FINAL") == 200
        assert migrated.execute(f"SELECT uniqExact(event_id) FROM {table}") == [(200,)]
        migrated.execute(f"OPTIMIZE TABLE {table} FINAL")
        assert self.count(migrated, mapping.table) == 200

    def test_retention_drops_old_days_and_keeps_recent_ones(
        self, migrated: ClickHouseBackend
    ) -> None:
        now = int(time.time() * 1000)
        mapping = INGEST_HEALTH_BEATS
        ages_in_days = [30, 10, 8, 3, 0]
        migrated.insert(
            mapping.table,
            mapping.column_names,
            [mapping.row(beat(n, now - age * DAY_MS)) for n, age in enumerate(ages_in_days)],
        )
        assert len(list_partitions(migrated, mapping.table)) == 5

        dropped = drop_expired_partitions(migrated, mapping.table, now_ms=now, keep_days=7)

        assert len(dropped) == 3
        assert len(list_partitions(migrated, mapping.table)) == 2
        kept = migrated.execute(
            f"SELECT beat_seq FROM `{migrated.database}`.{mapping.table} FINAL ORDER BY beat_seq"
        )
        assert kept == [(3,), (4,)]
        assert drop_expired_partitions(migrated, mapping.table, now_ms=now, keep_days=7) == []

    def test_an_empty_batch_is_fine(self, migrated: ClickHouseBackend) -> None:
        mapping = QOE_TELEMETRY_SAMPLES

        assert migrated.insert(mapping.table, mapping.column_names, []) == 0
        assert ClickHouseSink(migrated).flush() == 0
        assert self.count(migrated, mapping.table) == 0

    def test_a_wrong_statement_is_a_query_error(self, migrated: ClickHouseBackend) -> None:
        with pytest.raises(ClickHouseQueryError):
            migrated.execute(f"SELECT no_such_column FROM `{migrated.database}`.schema_migrations")
        with pytest.raises(ClickHouseQueryError):
            migrated.insert("no_such_table", ["event_id"], [("x",)])


class TestNativeBackend(ClickHouseContract):
    """Debian's clickhouse-server 18.16, started for the session by the fixtures."""

    @pytest.fixture(autouse=True)
    def _server(self, clickhouse_server: Settings) -> None:
        self.settings = clickhouse_server

    def open_backend(self, database: str) -> ClickHouseBackend:
        return NativeBackend(with_database(self.settings, database))


class TestEmbeddedBackend(ClickHouseContract):
    """chdb in this process, on a data path of its own."""

    @pytest.fixture(autouse=True)
    def _path(self, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.settings = stack_settings
        self.path: Path = tmp_path_factory.getbasetemp() / "chdb-contract"

    def open_backend(self, database: str) -> ClickHouseBackend:
        return EmbeddedBackend(with_database(self.settings, database), path=self.path)
