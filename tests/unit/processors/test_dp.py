"""The DP export: contribution bounds, OpenDP's Laplace noise, and the per-day ε budget."""

from __future__ import annotations

import statistics

import pytest

from processors.dp import (
    STATISTICS,
    BudgetExhausted,
    ContributionBounds,
    GroupTotals,
    OpenDPLaplace,
    ViewerActivity,
    bounded_totals,
    charge,
    noisy_release,
)

EU, US = ("eu-west",), ("us-east",)


class NoNoise:
    """Records what it was asked for and adds nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []

    def release(self, values: list[int], *, sensitivity: int, epsilon: float) -> list[int]:
        self.calls.append((sensitivity, epsilon))
        return list(values)


def test_each_viewer_counts_once_in_their_main_group_with_clipping() -> None:
    bounds = ContributionBounds(sessions=2, play_s=100, rebuffer_s=10)
    activity = [
        ViewerActivity("a", EU, sessions=5, play_ms=500_000, rebuffer_ms=50_000),
        ViewerActivity("a", US, sessions=1, play_ms=1_000, rebuffer_ms=0),
        ViewerActivity("b", US, sessions=1, play_ms=30_000, rebuffer_ms=2_000),
        ViewerActivity("c", ("elsewhere",), sessions=1, play_ms=30_000, rebuffer_ms=0),
    ]

    totals = bounded_totals(activity, [EU, US], bounds)

    assert totals[EU] == GroupTotals(viewers=1, sessions=2, play_ms=100_000, rebuffer_ms=10_000)
    assert totals[US] == GroupTotals(viewers=1, sessions=1, play_ms=30_000, rebuffer_ms=2_000)


def test_short_plays_add_up_before_they_become_seconds() -> None:
    activity = [ViewerActivity(f"v{i}", EU, 1, play_ms=600, rebuffer_ms=100) for i in range(10)]

    totals = bounded_totals(activity, [EU], ContributionBounds())

    assert (totals[EU].value("play_s"), totals[EU].value("rebuffer_s")) == (6, 1)


def test_every_public_group_is_released_even_when_empty() -> None:
    totals = bounded_totals([], [EU, US], ContributionBounds())
    release = noisy_release(totals, epsilon=1.0, mechanism=NoNoise(), bounds=ContributionBounds())

    assert [r.group for r in release.rows] == [EU, US]
    assert release.rows[0].rebuffer_ratio is None


def test_epsilon_is_split_across_the_statistics_with_their_sensitivities() -> None:
    mechanism = NoNoise()
    bounds = ContributionBounds(sessions=3, play_s=3600, rebuffer_s=60)

    noisy_release(
        {EU: GroupTotals(5, 6, 7_000, 8_000)}, epsilon=0.5, mechanism=mechanism, bounds=bounds
    )

    assert [s for s, _ in mechanism.calls] == [1, 3, 3600, 60]
    assert sum(e for _, e in mechanism.calls) == pytest.approx(0.5)
    assert sum(w for _, w in STATISTICS) == pytest.approx(1.0)


def test_opendp_noise_is_integer_unbiased_and_scaled_by_sensitivity_over_epsilon() -> None:
    mechanism = OpenDPLaplace()

    draws = mechanism.release([1_000] * 4_000, sensitivity=2, epsilon=1.0)

    assert all(isinstance(d, int) for d in draws)
    assert statistics.mean(draws) == pytest.approx(1_000, abs=0.5)
    # Laplace(b) has standard deviation b * sqrt(2); b = 2 / 1.
    assert statistics.pstdev(draws) == pytest.approx(2 * 2**0.5, rel=0.15)
    assert len(set(draws)) > 5


def test_the_ratio_comes_from_the_noisy_sums_and_stays_in_range() -> None:
    release = noisy_release(
        {EU: GroupTotals(10, 10, 900_000, 100_000), US: GroupTotals(10, 10, 0, 3_000)},
        epsilon=1.0,
        mechanism=NoNoise(),
        bounds=ContributionBounds(),
    )

    eu, us = release.rows
    assert eu.rebuffer_ratio == pytest.approx(0.1)
    assert us.rebuffer_ratio == 1.0


def test_the_budget_refuses_what_would_exceed_the_day() -> None:
    spent = 0.0
    for _ in range(10):
        spent = charge(spent, 0.1, 1.0)

    assert spent == pytest.approx(1.0)
    with pytest.raises(BudgetExhausted, match="left"):
        charge(spent, 0.01, 1.0)
    with pytest.raises(BudgetExhausted):
        charge(0.0, 1.5, 1.0)
    with pytest.raises(ValueError):
        charge(0.0, 0.0, 1.0)
