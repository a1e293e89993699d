"""Which epoch governs which period, and when the next epoch is published: pure rules."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.keys.errors import KeyHierarchyError
from services.keys.schedule import KeySchedule
from services.keys.timeline import (
    EpochInfo,
    RotationPolicy,
    chain_period_seconds,
    earliest_safe_start,
    epoch_for_period,
    epoch_in_force,
    first_epoch_start,
    invalid_reason,
    next_scheduled_start,
    pending_after,
)

P = 60_000
SCHEDULE = KeySchedule(60)
T0 = 1_800_000_000_000  # a period boundary


def epoch(epoch_id: str, started_at: int, created_at: int = 0, **extra: object) -> EpochInfo:
    return EpochInfo(
        epoch_id=epoch_id,
        started_at=started_at,
        period_seconds=int(extra.get("period_seconds", 60)),  # type: ignore[call-overload]
        emergency=bool(extra.get("emergency", False)),
        created_at=created_at,
    )


def test_the_newest_started_epoch_is_in_force() -> None:
    first, second = epoch("a", T0), epoch("b", T0 + 10 * P)
    assert epoch_in_force([first, second], T0 - 1) is None
    assert epoch_in_force([first, second], T0) == first
    assert epoch_in_force([first, second], T0 + 10 * P - 1) == first
    assert epoch_in_force([second, first], T0 + 10 * P) == second


def test_an_emergency_epoch_replaces_the_current_period_but_not_earlier_ones() -> None:
    old = epoch("old", T0, created_at=T0)
    now = T0 + 5 * P + 30_000
    emergency = epoch("new", first_epoch_start(SCHEDULE, now), created_at=now, emergency=True)
    epochs = [old, emergency]
    current = SCHEDULE.number_at(now)
    assert epoch_for_period(epochs, current) == emergency
    assert epoch_for_period(epochs, current + 1) == emergency
    assert epoch_for_period(epochs, current - 1) == old


def test_at_the_same_boundary_the_epoch_created_last_wins() -> None:
    scheduled = epoch("scheduled", T0, created_at=T0 - 3_600_000)
    emergency = epoch("emergency", T0, created_at=T0 + 1, emergency=True)
    assert epoch_in_force([emergency, scheduled], T0) == emergency
    assert epoch_for_period([scheduled, emergency], T0 // P) == emergency


def test_pending_epochs_are_those_starting_later() -> None:
    epochs = [epoch("a", T0), epoch("b", T0 + P), epoch("c", T0 + 2 * P)]
    assert [e.epoch_id for e in pending_after(epochs, T0)] == ["b", "c"]


@given(
    starts=st.lists(st.integers(0, 50), min_size=1, max_size=8),
    created=st.lists(st.integers(0, 10**6), min_size=8, max_size=8),
    period=st.integers(0, 60),
    seed=st.integers(),
)
def test_every_region_picks_the_same_epoch_whatever_order_it_read_them_in(
    starts: list[int], created: list[int], period: int, seed: int
) -> None:
    epochs = [epoch(f"e{i}", s * P, created[i]) for i, s in enumerate(starts)]
    shuffled = list(epochs)
    random.Random(seed).shuffle(shuffled)
    chosen = epoch_for_period(epochs, period)
    assert epoch_for_period(shuffled, period) == chosen
    assert epoch_in_force(shuffled, period * P) == chosen


def test_epochs_off_the_grid_or_with_bad_periods_are_invalid_everywhere() -> None:
    assert invalid_reason(epoch("a", T0)) is None
    assert invalid_reason(epoch("a", T0 + 1)) == "unaligned-epoch"
    assert invalid_reason(epoch("a", T0, period_seconds=0)) == "bad-period"
    assert invalid_reason(epoch("", T0)) == "bad-epoch-id"


def test_the_chain_keeps_its_period_length() -> None:
    assert chain_period_seconds([], None) == KeySchedule().period_seconds
    assert chain_period_seconds([], 60) == 60
    assert chain_period_seconds([epoch("a", T0)], None) == 60
    assert chain_period_seconds([epoch("a", T0)], 60) == 60
    with pytest.raises(KeyHierarchyError) as caught:
        chain_period_seconds([epoch("a", T0)], 120)
    assert caught.value.reason == "period-length-change"


def test_a_scheduled_epoch_is_published_lead_seconds_ahead() -> None:
    policy = RotationPolicy(epoch_seconds=3_600, lead_seconds=600)
    current = epoch("a", T0)
    due = T0 + 3_600_000
    assert next_scheduled_start([current], due - 600_001, policy, SCHEDULE) is None
    assert next_scheduled_start([current], due - 600_000, policy, SCHEDULE) == due
    published = epoch("b", due, created_at=due - 600_000)
    assert next_scheduled_start([current, published], due - 1, policy, SCHEDULE) is None


def test_nothing_is_scheduled_before_the_first_epoch() -> None:
    assert next_scheduled_start([], T0, RotationPolicy(), SCHEDULE) is None


@given(now=st.integers(T0, T0 + 10**9), lead=st.integers(0, 7_200))
def test_a_scheduled_epoch_never_changes_a_key_a_license_already_carries(
    now: int, lead: int
) -> None:
    policy = RotationPolicy(epoch_seconds=600, lead_seconds=lead)
    start = next_scheduled_start([epoch("a", T0)], now, policy, SCHEDULE)
    if start is not None:
        # Licenses issued now carry the current and the next period.
        _, following = SCHEDULE.current_and_next(now)
        assert start >= following.end_ms == earliest_safe_start(SCHEDULE, now)
        assert SCHEDULE.is_boundary(start)


@settings(max_examples=60, deadline=None)
@given(
    epoch_s=st.integers(60, 7_200),
    lead_s=st.integers(0, 3_600),
    step=st.integers(1_000, 600_000),
)
def test_running_the_plan_keeps_an_epoch_in_force_and_rotates_on_time(
    epoch_s: int, lead_s: int, step: int
) -> None:
    policy = RotationPolicy(epoch_seconds=epoch_s, lead_seconds=lead_s)
    epochs = [epoch("e0", T0, created_at=T0)]
    now = T0
    # Five epoch lengths, in at most 2,000 steps.
    end = min(T0 + 5 * epoch_s * 1000, T0 + 2_000 * step)
    while now < end:
        start = next_scheduled_start(epochs, now, policy, SCHEDULE)
        if start is not None:
            epochs.append(epoch(f"e{len(epochs)}", start, created_at=now))
        current = epoch_in_force(epochs, now)
        assert current is not None
        # An epoch lives its length, plus at most one check interval and the safe start.
        limit = epoch_s * 1000 + step + 3 * P
        assert now - current.started_at < limit
        assert len(pending_after(epochs, now)) <= 1
        now += step


def test_policies_are_checked() -> None:
    with pytest.raises(KeyHierarchyError):
        RotationPolicy(period_seconds=5)
    with pytest.raises(KeyHierarchyError):
        RotationPolicy(epoch_seconds=0)
