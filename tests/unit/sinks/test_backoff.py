"""The backoff schedule a sink runner follows while ClickHouse pushes back."""

import pytest

from sinks.backoff import Backoff


def test_delays_double_until_the_cap() -> None:
    backoff = Backoff(initial=0.2, factor=2.0, cap=1.0)

    assert [backoff.delay(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_retry_after_hint_raises_the_delay_but_not_above_the_cap() -> None:
    backoff = Backoff(initial=0.2, factor=2.0, cap=5.0)

    assert backoff.delay(1, retry_after=1.5) == 1.5
    assert backoff.delay(5, retry_after=1.5) == 3.2
    assert backoff.delay(1, retry_after=60.0) == 5.0


def test_a_very_long_outage_stays_at_the_cap() -> None:
    assert Backoff(cap=10.0).delay(10_000) == 10.0


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0.0}, {"factor": 0.5}, {"initial": 2.0, "cap": 1.0}]
)
def test_a_schedule_that_would_not_back_off_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(0)
