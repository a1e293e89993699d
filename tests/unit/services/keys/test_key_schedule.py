"""Key period arithmetic: every time falls in exactly one period, and periods tile time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.keys.errors import KeyHierarchyError
from services.keys.schedule import (
    DEFAULT_PERIOD_SECONDS,
    MAX_PERIOD_SECONDS,
    MIN_PERIOD_SECONDS,
    KeySchedule,
)

TIMES = st.integers(0, 2**53)
LENGTHS = st.integers(MIN_PERIOD_SECONDS, MAX_PERIOD_SECONDS)


@given(t=TIMES, seconds=LENGTHS)
def test_a_time_lies_in_its_period(t: int, seconds: int) -> None:
    period = KeySchedule(seconds).at(t)
    assert period.start_ms <= t < period.end_ms
    assert period.contains(t)
    assert period.end_ms - period.start_ms == seconds * 1000
    assert period.start_ms == period.number * seconds * 1000


@given(t=TIMES, seconds=LENGTHS)
def test_the_next_period_starts_where_the_current_one_ends(t: int, seconds: int) -> None:
    current, following = KeySchedule(seconds).current_and_next(t)
    assert following.number == current.number + 1
    assert following.start_ms == current.end_ms
    assert KeySchedule(seconds).at(current.end_ms) == following
    assert KeySchedule(seconds).at(current.end_ms - 1) == current


@given(t=TIMES, seconds=LENGTHS)
def test_boundaries(t: int, seconds: int) -> None:
    schedule = KeySchedule(seconds)
    boundary = schedule.boundary_at_or_after(t)
    assert t <= boundary < t + schedule.period_ms
    assert schedule.is_boundary(boundary)
    assert schedule.at(boundary).start_ms == boundary
    assert schedule.is_boundary(t) == (boundary == t)


@given(t=st.integers(0, 2**45))
def test_sixty_second_periods(t: int) -> None:
    schedule = KeySchedule(60)
    period = schedule.at(t)
    assert period.number == t // 60_000
    assert (period.start_ms, period.end_ms) == (
        period.number * 60_000,
        (period.number + 1) * 60_000,
    )


def test_a_concrete_sixty_second_boundary() -> None:
    schedule = KeySchedule(60)
    assert schedule.at(1_800_000_059_999).number == 30_000_000
    assert schedule.at(1_800_000_060_000).number == 30_000_001


def test_the_default_is_a_few_minutes() -> None:
    assert KeySchedule().period_seconds == DEFAULT_PERIOD_SECONDS
    assert 60 <= DEFAULT_PERIOD_SECONDS <= 300


@pytest.mark.parametrize("seconds", [0, -60, MIN_PERIOD_SECONDS - 1, MAX_PERIOD_SECONDS + 1])
def test_unusable_period_lengths_are_refused(seconds: int) -> None:
    with pytest.raises(KeyHierarchyError) as caught:
        KeySchedule(seconds)
    assert caught.value.reason == "bad-period"


@pytest.mark.parametrize("call", ["at", "period"])
def test_negative_times_and_numbers_are_refused(call: str) -> None:
    with pytest.raises(KeyHierarchyError) as caught:
        getattr(KeySchedule(60), call)(-1)
    assert caught.value.reason == "bad-period"
