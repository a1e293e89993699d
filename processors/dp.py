"""The differential-privacy export: noisy per-group QoE figures for one day, within an ε budget.

For figures that leave the company. The unit of privacy is a viewer (a pseudonym) over one
UTC day, and the release is the same for any data: one row per *public* group (every
configured serving region, optionally crossed with a list of CDNs given by the caller),
so whether a row exists reveals nothing.

Contribution bounds make the sensitivity finite. Each viewer counts in exactly one group,
the one they played longest in (ties broken by name), with at most `sessions` sessions,
`play_s` seconds of play and `rebuffer_s` seconds of stalls; more is clipped. Groups are
then disjoint in viewers, so one viewer changes one row by at most (1, sessions, play_s,
rebuffer_s).

Noise: the discrete Laplace (geometric) mechanism from OpenDP (`make_laplace` on integer
vectors with the L1 distance), one measurement per released statistic, each given
`weight * ε`; by sequential composition the release costs ε. The rebuffer ratio is
computed from the noisy sums (post-processing, free).

Budget: every release is charged to its data day in a ledger; `charge` refuses a release
that would take the day past its budget. The ledger itself is data (`dp_budget_ledger`
in ClickHouse): this module only decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from processors.errors import ProcessorError

# Share of ε per statistic; they sum to 1. Viewers and the ratio's inputs matter most.
STATISTICS: tuple[tuple[str, float], ...] = (
    ("viewers", 0.3),
    ("sessions", 0.2),
    ("play_s", 0.25),
    ("rebuffer_s", 0.25),
)


class BudgetExhausted(ProcessorError):
    """The release would take its data day past the ε budget."""

    reason = "dp-budget-exhausted"


@dataclass(frozen=True, slots=True)
class ContributionBounds:
    """What one viewer may contribute to a day's release; more is clipped."""

    sessions: int = 5
    play_s: int = 4 * 3600
    rebuffer_s: int = 600

    def sensitivity(self, statistic: str) -> int:
        """How far one viewer can move the statistic (L1 over all groups)."""
        return {
            "viewers": 1,
            "sessions": self.sessions,
            "play_s": self.play_s,
            "rebuffer_s": self.rebuffer_s,
        }[statistic]


Group = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ViewerActivity:
    """One viewer's activity in one group over the day (a row of the contributions query)."""

    viewer: str
    group: Group
    sessions: int
    play_ms: int
    rebuffer_ms: int


@dataclass(slots=True)
class GroupTotals:
    """True (clipped) totals of one group. Times add up in milliseconds and are released in
    whole seconds of the sum: floor(sum / 1000) moves by at most the bound in seconds when
    one viewer's clipped milliseconds come or go, and short plays are not rounded away."""

    viewers: int = 0
    sessions: int = 0
    play_ms: int = 0
    rebuffer_ms: int = 0

    def value(self, statistic: str) -> int:
        if statistic == "play_s":
            return self.play_ms // 1000
        if statistic == "rebuffer_s":
            return self.rebuffer_ms // 1000
        return int(getattr(self, statistic))


def bounded_totals(
    activity: Iterable[ViewerActivity], groups: Sequence[Group], bounds: ContributionBounds
) -> dict[Group, GroupTotals]:
    """True totals per public group after assigning each viewer to one group and clipping."""
    public = set(groups)
    by_viewer: dict[str, list[ViewerActivity]] = {}
    for row in activity:
        if row.group in public:
            by_viewer.setdefault(row.viewer, []).append(row)
    totals = {group: GroupTotals() for group in groups}
    for rows in by_viewer.values():
        # The group they played longest in; the name breaks ties, so the choice is stable.
        main = max(rows, key=lambda r: (r.play_ms, r.group))
        group_rows = [r for r in rows if r.group == main.group]
        target = totals[main.group]
        target.viewers += 1
        target.sessions += min(sum(r.sessions for r in group_rows), bounds.sessions)
        target.play_ms += min(sum(r.play_ms for r in group_rows), bounds.play_s * 1000)
        target.rebuffer_ms += min(sum(r.rebuffer_ms for r in group_rows), bounds.rebuffer_s * 1000)
    return totals


class Mechanism(Protocol):
    """Adds noise to a vector of integers whose L1 sensitivity is given, for a share of ε."""

    def release(self, values: Sequence[int], *, sensitivity: int, epsilon: float) -> list[int]:
        """The noisy values; the measurement must cost at most epsilon."""
        ...


class OpenDPLaplace:
    """OpenDP's discrete Laplace mechanism on i64 vectors (L1 distance), scale = Δ/ε."""

    def __init__(self) -> None:
        import opendp.prelude as dp

        dp.enable_features("contrib")
        self._dp = dp

    def release(self, values: Sequence[int], *, sensitivity: int, epsilon: float) -> list[int]:
        dp = self._dp
        measurement = dp.m.make_laplace(
            dp.vector_domain(dp.atom_domain(T="i64")),
            dp.l1_distance(T="i64"),
            scale=sensitivity / epsilon,
        )
        spent = float(measurement.map(sensitivity))
        # OpenDP's own accounting must agree with the share we charge for.
        if spent > epsilon * (1 + 1e-9):
            raise ProcessorError(
                f"the Laplace measurement costs {spent}, more than {epsilon}",
                reason="dp-accounting",
            )
        return [int(v) for v in measurement([int(v) for v in values])]


@dataclass(frozen=True, slots=True)
class NoisyRow:
    """One released group: noisy counts and sums, the ratio computed from them."""

    group: Group
    viewers: int
    sessions: int
    play_s: int
    rebuffer_s: int

    @property
    def rebuffer_ratio(self) -> float | None:
        """From the noisy sums, clamped into [0, 1]; None when they carry no signal."""
        play, rebuffer = max(self.play_s, 0), max(self.rebuffer_s, 0)
        if play + rebuffer == 0:
            return None
        return rebuffer / (play + rebuffer)


@dataclass(frozen=True, slots=True)
class Release:
    rows: tuple[NoisyRow, ...]
    epsilon: float
    bounds: ContributionBounds = field(default_factory=ContributionBounds)


def noisy_release(
    totals: Mapping[Group, GroupTotals],
    *,
    epsilon: float,
    mechanism: Mechanism,
    bounds: ContributionBounds,
) -> Release:
    """Noise on every statistic of every group; costs epsilon in total."""
    if epsilon <= 0:
        raise ValueError("epsilon must be positive")
    groups = sorted(totals)
    noisy: dict[str, list[int]] = {}
    for statistic, weight in STATISTICS:
        values = [totals[g].value(statistic) for g in groups]
        noisy[statistic] = mechanism.release(
            values, sensitivity=bounds.sensitivity(statistic), epsilon=epsilon * weight
        )
    rows = tuple(
        NoisyRow(
            group,
            viewers=noisy["viewers"][i],
            sessions=noisy["sessions"][i],
            play_s=noisy["play_s"][i],
            rebuffer_s=noisy["rebuffer_s"][i],
        )
        for i, group in enumerate(groups)
    )
    return Release(rows, epsilon, bounds)


def charge(spent: float, epsilon: float, budget: float) -> float:
    """The day's spend after a release of epsilon; BudgetExhausted if over budget."""
    if epsilon <= 0:
        raise ValueError("epsilon must be positive")
    after = spent + epsilon
    # A hair of tolerance: ten releases of 0.1 must fit a budget of 1.0.
    if after > budget + 1e-9:
        raise BudgetExhausted(
            f"this release needs ε={epsilon:g} but the day has {max(budget - spent, 0):g} "
            f"of its {budget:g} left"
        )
    return after
