"""The QoE analytics tables on both backends: rollups, example queries, retention, erasure.

Like the ClickHouse contract, one class of tests runs against Debian's 18.16 server and
against chdb; each test gets a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liveward.settings import Settings
from processors.dp import BudgetExhausted
from services.bridge.epochs import InMemoryKeyring, epoch_label
from services.bridge.errors import EpochDestroyed
from services.bridge.pseudonyms import EpochPseudonyms
from sinks.clickhouse.backends import ClickHouseBackend, EmbeddedBackend, NativeBackend
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.retention import apply_retention, list_partitions
from sinks.clickhouse.rollups import EXAMPLE_QUERIES, ROLLUP_TABLES
from sinks.clickhouse.tables import QOE_AGGREGATES, QOE_TELEMETRY_SAMPLES
from sinks.dp_export import day_bounds_ms, export_day, spent_on
from streams.events import QoEAggregate, QoETelemetrySample
from streams.meta import new_event_id, now_ms
from tests.fixtures.qoe import telemetry

DAY_MS = 86_400_000


def with_database(settings: Settings, database: str) -> Settings:
    clickhouse = settings.clickhouse.model_copy(update={"database": database})
    return settings.model_copy(update={"clickhouse": clickhouse})


def aggregate_at(window_start: int) -> QoEAggregate:
    return QoEAggregate(
        event_id=new_event_id(),
        occurred_at=window_start + 20_000,
        region="eu-west",
        window_start=window_start,
        window_end=window_start + 10_000,
        serving_region="eu-west",
        cdn="cdn-a",
        content_id="live-1",
        sessions=12,
        viewers=12,
        samples=30,
        rebuffer_ratio=0.1,
        exits_before_start=1,
        error_rate=0.0,
        bitrate_p50_kbps=3000.0,
        bitrate_p95_kbps=6000.0,
        play_ms=27_000,
        rebuffer_ms=3_000,
    )


def samples_at(at: int, viewers: int = 12) -> list[QoETelemetrySample]:
    return [
        telemetry(
            "eu-west",
            v,
            sampled_at=at + v,
            bitrate_kbps=(1500, 3000, 6000)[v % 3],
            error_code="E-500" if v % 4 == 0 else None,
            startup_ms=700 + v,
        )
        for v in range(viewers)
    ]


class QoEAnalyticsContract:
    def open_backend(self, database: str) -> ClickHouseBackend:
        raise NotImplementedError

    @pytest.fixture
    def backend(self) -> Iterator[ClickHouseBackend]:
        backend = self.open_backend(f"qoe_{uuid.uuid4().hex[:12]}")
        apply_migrations(backend)
        try:
            yield backend
        finally:
            backend.execute(f"DROP DATABASE IF EXISTS `{backend.database}`")
            backend.close()

    def insert(
        self,
        backend: ClickHouseBackend,
        samples: list[QoETelemetrySample],
        aggregates: list[QoEAggregate] = (),  # type: ignore[assignment]
    ) -> None:
        backend.insert(
            QOE_TELEMETRY_SAMPLES.table,
            QOE_TELEMETRY_SAMPLES.column_names,
            [QOE_TELEMETRY_SAMPLES.row(s) for s in samples],
        )
        if aggregates:
            backend.insert(
                QOE_AGGREGATES.table,
                QOE_AGGREGATES.column_names,
                [QOE_AGGREGATES.row(a) for a in aggregates],
            )

    def test_every_example_query_runs_and_answers(self, backend: ClickHouseBackend) -> None:
        now = now_ms()
        self.insert(backend, samples_at(now - 120_000), [aggregate_at(now - 120_000)])

        answers = {
            q.name: backend.execute(q.for_database(backend.database)) for q in EXAMPLE_QUERIES
        }

        assert all(answers.values()), [name for name, rows in answers.items() if not rows]
        [(_, region, cdn, ratio, viewers, samples)] = answers["rebuffer-by-region-cdn"]
        assert (region, cdn, viewers, samples) == ("eu-west", "cdn-a", 12, 12)
        assert ratio == pytest.approx(0.1)
        assert answers["top-error-codes"] == [("E-500", 3, 3, 3)]
        assert [(b, n) for b, n, _ in answers["bitrate-distribution"]] == [
            (1500, 4),
            (3000, 4),
            (6000, 4),
        ]

    def test_the_region_view_keeps_the_k_floor(self, backend: ClickHouseBackend) -> None:
        now = now_ms()
        self.insert(backend, samples_at(now - 120_000, viewers=9))

        rows = backend.execute(f"SELECT * FROM `{backend.database}`.qoe_region_cdn_minute")
        raw = backend.execute(f"SELECT uniqMerge(viewers) FROM `{backend.database}`.qoe_minute")

        assert rows == [] and raw == [(9,)]

    def test_retention_drops_expired_days_from_every_analytics_table(
        self, backend: ClickHouseBackend
    ) -> None:
        now = now_ms()
        old = now - 40 * DAY_MS
        old_samples = [replace(s, occurred_at=s.sampled_at + 100) for s in samples_at(old)]
        self.insert(backend, old_samples + samples_at(now - 60_000),
                    [aggregate_at(old), aggregate_at(now - 60_000)])  # fmt: skip
        tables = ["qoe_telemetry_samples", "qoe_aggregates", *ROLLUP_TABLES]
        before = {t: len(list_partitions(backend, t)) for t in tables}

        dropped = apply_retention(backend, now_ms=now, keep_days=30)

        assert before == dict.fromkeys(tables, 2)
        assert set(dropped) == set(tables)
        for table in tables:
            assert len(list_partitions(backend, table)) == 1, table
        count = backend.execute(f"SELECT count() FROM `{backend.database}`.qoe_telemetry_samples")
        assert count == [(12,)]
        # Nothing left to drop: a second pass is a no-op.
        assert apply_retention(backend, now_ms=now, keep_days=30) == {}

    def test_destroying_an_epoch_key_unlinks_its_pseudonyms(
        self, backend: ClickHouseBackend
    ) -> None:
        keyring = InMemoryKeyring()
        now = now_ms()
        label = epoch_label(now, 86_400)
        first = keyring.current(label, now)
        stored = EpochPseudonyms(first).viewer("alice")
        self.insert(
            backend,
            [replace(s, viewer_pseudonym=stored, pseudonym_epoch=first.epoch)
             for s in samples_at(now - 60_000, viewers=1)],
        )  # fmt: skip

        assert keyring.destroy(first.epoch, now)

        # The key is gone: nobody can compute alice's pseudonym of that epoch again...
        with pytest.raises(EpochDestroyed):
            keyring.key(first.epoch)
        # ...and the epoch that replaces it gives alice a pseudonym matching no stored row.
        after = keyring.current(label, now)
        assert after.epoch != first.epoch
        recomputed = EpochPseudonyms(after).viewer("alice")
        assert recomputed != stored
        matches = backend.execute(
            f"SELECT count() FROM `{backend.database}`.qoe_telemetry_samples "
            f"WHERE viewer_pseudonym = '{recomputed}'"
        )
        assert matches == [(0,)]
        # The next day's epoch is unlinkable too.
        tomorrow = keyring.current(epoch_label(now + 86_400_000, 86_400), now)
        assert EpochPseudonyms(tomorrow).viewer("alice") not in {stored, recomputed}

    def test_the_dp_export_reads_the_day_and_charges_its_budget(
        self, backend: ClickHouseBackend
    ) -> None:
        now = now_ms()
        day = datetime.fromtimestamp(now / 1000, UTC).date()
        self.insert(backend, samples_at(day_bounds_ms(day)[0] + 1_000))
        groups = [("eu-west",), ("us-east",)]

        release, spent = export_day(
            backend, day, groups=groups, epsilon=0.6, budget=1.0, mechanism=Exact()
        )

        eu, us = release.rows
        assert (eu.viewers, eu.sessions, eu.play_s, eu.rebuffer_s) == (
            12,
            12,
            21,
            2,
        )  # 12 x 1.8 s, 12 x 0.2 s
        assert (us.viewers, us.sessions) == (0, 0)
        assert spent == pytest.approx(0.6) and spent_on(backend, day) == pytest.approx(0.6)
        with pytest.raises(BudgetExhausted):
            export_day(backend, day, groups=groups, epsilon=0.5, budget=1.0, mechanism=Exact())
        # A refused release is not charged; another day has its own budget.
        assert spent_on(backend, day) == pytest.approx(0.6)
        export_day(
            backend, day - timedelta(days=1), groups=groups, epsilon=1.0, budget=1.0,
            mechanism=Exact(),
        )  # fmt: skip


class Exact:
    """No noise: the export's figures can be checked exactly."""

    def release(self, values: list[int], *, sensitivity: int, epsilon: float) -> list[int]:
        return list(values)


class TestNativeBackend(QoEAnalyticsContract):
    @pytest.fixture(autouse=True)
    def _server(self, clickhouse_server: Settings) -> None:
        self.settings = clickhouse_server

    def open_backend(self, database: str) -> ClickHouseBackend:
        return NativeBackend(with_database(self.settings, database))


class TestEmbeddedBackend(QoEAnalyticsContract):
    @pytest.fixture(autouse=True)
    def _path(self, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.settings = stack_settings
        # The same path as the ClickHouse contract: one chdb path per process.
        self.path: Path = tmp_path_factory.getbasetemp() / "chdb-contract"

    def open_backend(self, database: str) -> ClickHouseBackend:
        return EmbeddedBackend(with_database(self.settings, database), path=self.path)
