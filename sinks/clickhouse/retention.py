"""Retention without TTL: list a table's day partitions and drop those older than N days.

Tables are partitioned by UTC day (`toYYYYMMDD`), so the partition ids are `YYYYMMDD`
strings. `keep_days=N` keeps today and the N days before it; anything older goes with
`ALTER TABLE … DROP PARTITION ID`, which both 18.16 and chdb accept. A partition id that
is not a day is never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
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
