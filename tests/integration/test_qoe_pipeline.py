"""QoE end to end: samples → Faust worker → qoe.aggregates → analytics sink → ClickHouse.

The session worker runs with the default rules (10 s windows, 5 s lateness, k = 10).
Each test uses a serving region of its own, so its windows share no state with anything
else on the broker, and event times five minutes in the past, so windows close as soon
as the worker has seen a later sample (or the region has been quiet for a window).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from liveward.settings import Settings
from sinks.analytics import AnalyticsSink
from sinks.clickhouse.backends import NativeBackend
from streams.meta import now_ms
from streams.producer import EventProducer
from tests.fixtures.qoe import (
    aggregates_of,
    consume_until,
    partial_samples,
    send_samples,
    telemetry,
)

WINDOW_MS = 10_000


@pytest.fixture
def region() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def window_start() -> int:
    """A window five minutes ago."""
    t = now_ms() - 300_000
    return t - t % WINDOW_MS


@pytest.fixture
def analytics_sink(
    worker: Settings, clickhouse_server: Settings, unique_name: str
) -> Iterator[AnalyticsSink]:
    """The analytics sink on the session's ClickHouse server, in a database of its own."""
    database = "qoe_" + uuid.uuid4().hex[:12]
    settings = clickhouse_server.model_copy(
        update={
            "clickhouse": clickhouse_server.clickhouse.model_copy(update={"database": database})
        }
    )
    sink = AnalyticsSink(settings, group_id=unique_name)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
        backend = NativeBackend(settings)
        backend.execute(f"DROP DATABASE IF EXISTS `{database}`")
        backend.close()


def wait_for_rows(sink: AnalyticsSink, sql: str, want: Callable[[list[Any]], bool]) -> list[Any]:
    deadline = time.monotonic() + 60
    rows: list[Any] = []
    while time.monotonic() < deadline:
        rows = sink.backend.execute(sql)
        if want(rows):
            return rows
        time.sleep(0.5)
    return rows


def test_samples_become_k_anonymous_aggregates_with_late_and_suppressed_counts(
    worker: Settings, analytics_sink: AnalyticsSink, region: str, window_start: int
) -> None:
    a = window_start
    producer = EventProducer(worker)
    # Window A: one content big enough to publish, two that are only big enough together,
    # and one CDN with two viewers, which nothing can hide.
    first = (
        [telemetry(region, v, sampled_at=a + 100 * v, bitrate_kbps=1000 * (v % 4 + 1))
         for v in range(12)]
        + [telemetry(region, 100 + v, sampled_at=a + 500, content="s1") for v in range(6)]
        + [telemetry(region, 200 + v, sampled_at=a + 500, content="s2", error_code="E-404")
           for v in range(5)]
        + [telemetry(region, 300 + v, sampled_at=a + 900, cdn="cdn-b", content="t")
           for v in range(2)]
    )  # fmt: skip
    send_samples(producer, first)
    assert partial_samples(worker, region, len(first)) == len(first)

    # Window B (30 s later) moves the watermark past A's end + lateness: A closes.
    second = [telemetry(region, v, sampled_at=a + 30_000 + v) for v in range(10)]
    send_samples(producer, second)
    closed_a = aggregates_of(worker, region, lambda f: any(x.window_start == a for x in f))
    assert closed_a, "window A was not published"

    # Sampled in A, received after A closed: late.
    late = [
        telemetry(region, 400 + v, sampled_at=a + 1_000, occurred_at=a + 31_000) for v in range(3)
    ]
    send_samples(producer, late)
    producer.close()
    # B closes once the region has been quiet for a window length.
    published = aggregates_of(
        worker, region, lambda f: any(x.window_start == a + 30_000 for x in f)
    )

    rows = {(x.window_start, x.cdn, x.content_id): x for x in published}
    assert set(rows) == {(a, "cdn-a", "big"), (a, "cdn-a", "*"), (a + 30_000, "cdn-a", "big")}
    assert all(x.viewers >= 10 for x in published)
    big, merged, b = (
        rows[(a, "cdn-a", "big")],
        rows[(a, "cdn-a", "*")],
        rows[(a + 30_000, "cdn-a", "big")],
    )
    assert (big.viewers, big.samples, big.sessions) == (12, 12, 12)
    assert big.rebuffer_ratio == pytest.approx(0.1)
    assert big.bitrate_p50_kbps == 2000 and big.bitrate_p95_kbps == 4000
    assert (merged.viewers, merged.merged_groups, merged.error_rate) == (11, 2, 5 / 11)
    # The two cdn-b viewers were suppressed; the late samples reported with window B.
    assert sum(x.suppressed_samples for x in published) == 2
    assert b.late_samples == 3
    total = len(first) + len(second) + len(late)
    assert sum(x.samples + x.late_samples + x.suppressed_samples for x in published) == total

    # The sink lands them, once each, and the rollups see every sample (late ones too).
    database = analytics_sink.backend.database
    stored = wait_for_rows(
        analytics_sink,
        f"SELECT cdn, content_id, viewers, late_samples, suppressed_samples "
        f"FROM `{database}`.qoe_aggregates FINAL WHERE serving_region = '{region}' "
        "ORDER BY window_start, cdn, content_id",
        lambda r: len(r) == 3,
    )
    assert stored == [
        ("cdn-a", "*", 11, 0, 0),
        ("cdn-a", "big", 12, 0, 2),
        ("cdn-a", "big", 10, 3, 0),
    ]
    per_cdn = wait_for_rows(
        analytics_sink,
        f"SELECT cdn, countMerge(samples), uniqMerge(viewers) FROM `{database}`.qoe_minute "
        f"WHERE serving_region = '{region}' GROUP BY cdn ORDER BY cdn",
        lambda r: sum(n for _, n, _ in r) == total,
    )
    assert per_cdn == [("cdn-a", total - 2, 26), ("cdn-b", 2, 2)]
    # The analysts' view keeps the floor: cdn-b (2 viewers) is not in it.
    floor = analytics_sink.backend.execute(
        f"SELECT cdn, viewers FROM `{database}`.qoe_region_cdn_minute "
        f"WHERE serving_region = '{region}'"
    )
    assert floor and all(cdn == "cdn-a" and viewers >= 10 for cdn, viewers in floor)
    errors = analytics_sink.backend.execute(
        f"SELECT error_code, countMerge(samples) FROM `{database}`.qoe_errors_minute "
        f"WHERE serving_region = '{region}' GROUP BY error_code"
    )
    assert errors == [("E-404", 5)]
    sessions = analytics_sink.backend.execute(
        f"SELECT count(), sum(samples) FROM `{database}`.qoe_sessions "
        f"WHERE serving_region = '{region}'"
    )
    assert sessions == [(12 + 6 + 5 + 2 + 3, total)]


def test_an_undecodable_sample_is_dead_lettered_and_aggregation_goes_on(
    worker: Settings, region: str, window_start: int
) -> None:
    producer = EventProducer(worker)
    garbage = b"\xc3\x01" + b"\x00" * 8 + b"not avro"
    producer.send_raw("qoe.telemetry", [(region.encode(), garbage)])
    samples = [telemetry(region, v, sampled_at=window_start + v) for v in range(10)]
    send_samples(producer, samples)
    producer.close()

    published = aggregates_of(worker, region, bool)

    assert [x.samples for x in published] == [10]
    letters = consume_until(
        worker,
        "liveward.dead-letter",
        bool,
        lambda m: m if m.value() and garbage in m.value() else None,
        timeout=30,
    )
    assert letters
