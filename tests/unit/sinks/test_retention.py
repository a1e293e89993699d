"""Which day partitions retention drops: older than today minus N days, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sinks.clickhouse.retention import expired_partitions, partition_day


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_partitions_older_than_the_kept_days_expire() -> None:
    partitions = ["20240101", "20240108", "20240109", "20240110", "20240115"]

    expired = expired_partitions(partitions, now_ms=ms("2024-01-15T12:00:00"), keep_days=6)

    assert expired == ["20240101", "20240108"]


def test_keeping_zero_days_keeps_only_today() -> None:
    expired = expired_partitions(
        ["20240114", "20240115"], now_ms=ms("2024-01-15T00:00:01"), keep_days=0
    )

    assert expired == ["20240114"]


def test_days_are_utc_days() -> None:
    # 23:59:59 UTC is still the 14th, whatever the machine's time zone says.
    expired = expired_partitions(
        ["20240113", "20240114"], now_ms=ms("2024-01-14T23:59:59"), keep_days=0
    )

    assert expired == ["20240113"]


def test_ids_that_are_not_days_are_never_dropped() -> None:
    partitions = ["all", "202401", "20241399", "tuple()"]

    assert expired_partitions(partitions, now_ms=ms("2030-01-01T00:00:00"), keep_days=1) == []
    assert partition_day("20241399") is None


def test_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError):
        expired_partitions([], now_ms=0, keep_days=-1)
