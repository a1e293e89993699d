"""The retention schedule the analytics sink follows: a pass at start, then every interval."""

from __future__ import annotations

from sinks.clickhouse.retention import RetentionSchedule


def test_a_pass_is_due_at_start_then_once_per_interval() -> None:
    schedule = RetentionSchedule(interval_s=3600)

    assert schedule.due(100.0)
    assert not schedule.due(100.0)
    assert not schedule.due(3699.9)
    assert schedule.due(3700.0)
    assert not schedule.due(3700.1)
    # A late check runs once, not once per missed interval.
    assert schedule.due(50_000.0)
    assert not schedule.due(50_001.0)
