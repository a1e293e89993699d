"""Retention without TTL: list a table's day partitions and drop those older than N days.

Tables are partitioned by UTC day (`toYYYYMMDD`), so the partition ids are `YYYYMMDD`
strings. `keep_days=N` keeps today and the N days before it; anything older goes with
`ALTER TABLE … DROP PARTITION ID`, which both 18.16 and chdb accept. A partition id that
is not a day is never dropped. `apply_retention` does it for every analytics table; the
analytics sink runs it on a `RetentionSchedule`, `liveward analytics retention` on demand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sinks.clickhouse.backends import ClickHouseBackend, qualified, quote_string


def partition_day(partition_id: str) -> date | None:
    """The UTC day a `YYYYMMDD` partition id stands for, or None for any other id."""
    if len(partition_id) != 8 or not partition_id.isdigit():
        return None
    try:
        return datetime.strptime(partition_id, "%Y%m%d").replace(tzinfo=UTC).date()
    except ValueError:
        return None


def expired_partitions(partition_ids: Iterable[str], *, now_ms: int, keep_days: int) -> list[str]:
    """The ids of day partitions older than today minus keep_days (UTC), in order."""
    if keep_days < 0:
        raise ValueError(f"keep_days must be >= 0, got {keep_days}")
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    cutoff = today - timedelta(days=keep_days)
    expired = []
    for partition_id in sorted(set(partition_ids)):
        day = partition_day(partition_id)
        if day is not None and day < cutoff:
            expired.append(partition_id)
    return expired


def list_partitions(backend: ClickHouseBackend, table: str) -> list[str]:
    """Ids of the partitions that hold active data in `database.table`."""
    rows = backend.execute(
        "SELECT DISTINCT partition_id FROM system.parts "
        f"WHERE database = {quote_string(backend.database)} "
        f"AND table = {quote_string(table)} AND active ORDER BY partition_id"
    )
    return [str(partition_id) for (partition_id,) in rows]


def drop_expired_partitions(
    backend: ClickHouseBackend, table: str, *, now_ms: int, keep_days: int
) -> list[str]:
    """Drop the day partitions of table older than keep_days; returns the ids dropped."""
    expired = expired_partitions(
        list_partitions(backend, table), now_ms=now_ms, keep_days=keep_days
    )
    for partition_id in expired:
        backend.execute(
            f"ALTER TABLE {qualified(backend, table)} "
            f"DROP PARTITION ID {quote_string(partition_id)}"
        )
    return expired


def day_partitioned_tables(backend: ClickHouseBackend) -> list[str]:
    """Every table of the database that holds data by UTC day: the MergeTree family, minus
    the migrations' bookkeeping (views and materialized views hold no parts of their own)."""
    rows = backend.execute(
        "SELECT name FROM system.tables "
        f"WHERE database = {quote_string(backend.database)} "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations' ORDER BY name"
    )
    return [str(name) for (name,) in rows]


def apply_retention(
    backend: ClickHouseBackend, *, now_ms: int, keep_days: int
) -> dict[str, list[str]]:
    """Drop expired day partitions of every analytics table; the ids dropped, per table."""
    dropped: dict[str, list[str]] = {}
    for table in day_partitioned_tables(backend):
        expired = drop_expired_partitions(backend, table, now_ms=now_ms, keep_days=keep_days)
        if expired:
            dropped[table] = expired
    return dropped


@dataclass(slots=True)
class RetentionSchedule:
    """When the next retention pass is due: at start, then every `interval_s` seconds.

    The clock is passed in (monotonic seconds), so the schedule is testable without waiting.
    """

    interval_s: float
    next_at: float | None = None

    def due(self, now: float) -> bool:
        """True if a pass is due at now; taking it schedules the next one."""
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + self.interval_s
        return True
