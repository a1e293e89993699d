"""The DP export's I/O: one day's viewer activity from ClickHouse, and the ε ledger kept there.

`export_day` reads the day's per-viewer activity, lets `processors.dp` bound and noise it,
and records the spend in `dp_budget_ledger` before handing the release back: a release
that is shown was paid for. Two exports racing for the last of a day's budget could both
pass the check; the ledger still records both, so the overspend is visible.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from processors.dp import (
    ContributionBounds,
    Group,
    Mechanism,
    Release,
    ViewerActivity,
    bounded_totals,
    charge,
    noisy_release,
)
from sinks.clickhouse.backends import ClickHouseBackend, qualified
from sinks.clickhouse.rollups import DP_LEDGER_TABLE


def day_bounds_ms(day: date) -> tuple[int, int]:
    """[start, end) of a UTC day in epoch milliseconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)


def day_id(day: date) -> int:
    return int(day.strftime("%Y%m%d"))


def spent_on(backend: ClickHouseBackend, day: date) -> float:
    """ε already charged to releases about day."""
    rows = backend.execute(
        f"SELECT sum(epsilon) FROM {qualified(backend, DP_LEDGER_TABLE)} "
        f"WHERE data_day = {day_id(day)}"
    )
    return float(rows[0][0] or 0.0) if rows else 0.0


def viewer_activity(backend: ClickHouseBackend, day: date, *, by_cdn: bool) -> list[ViewerActivity]:
    """Per viewer and group (serving region, and CDN if asked): sessions, play, stalls.

    From the deduplicated samples (FINAL), on event time like every other QoE figure.
    """
    start, end = day_bounds_ms(day)
    group = "serving_region, cdn" if by_cdn else "serving_region"
    rows = backend.execute(
        f"SELECT viewer_pseudonym, {group}, uniqExact(session_ref), "
        "sum(toInt64(play_ms)), sum(toInt64(rebuffer_ms)) "
        f"FROM {qualified(backend, 'qoe_telemetry_samples')} FINAL "
        f"WHERE least(sampled_at, occurred_at) >= {start} "
        f"AND least(sampled_at, occurred_at) < {end} "
        f"GROUP BY viewer_pseudonym, {group}"
    )
    width = 2 if by_cdn else 1
    return [
        ViewerActivity(
            viewer=str(row[0]),
            group=tuple(str(v) for v in row[1 : 1 + width]),
            sessions=int(row[1 + width]),
            play_ms=int(row[2 + width]),
            rebuffer_ms=int(row[3 + width]),
        )
        for row in rows
    ]


def export_day(
    backend: ClickHouseBackend,
    day: date,
    *,
    groups: Sequence[Group],
    epsilon: float,
    budget: float,
    mechanism: Mechanism,
    bounds: ContributionBounds | None = None,
) -> tuple[Release, float]:
    """A noisy release of day for the public groups, charged to day; and the day's spend.

    Raises BudgetExhausted, before reading any data, if epsilon does not fit the budget.
    """
    bounds = bounds or ContributionBounds()
    after = charge(spent_on(backend, day), epsilon, budget)
    by_cdn = any(len(g) == 2 for g in groups)
    totals = bounded_totals(viewer_activity(backend, day, by_cdn=by_cdn), groups, bounds)
    release = noisy_release(totals, epsilon=epsilon, mechanism=mechanism, bounds=bounds)
    backend.insert(
        DP_LEDGER_TABLE,
        ("data_day", "release_id", "charged_at", "epsilon", "description"),
        [
            (
                day_id(day),
                str(uuid.uuid4()),
                int(time.time() * 1000),
                float(epsilon),
                f"{len(groups)} groups by {'region and CDN' if by_cdn else 'region'}; "
                f"bounds {bounds}; groups {list(groups)}",
            )
        ],
    )
    return release, after
