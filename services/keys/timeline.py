"""Which epoch governs which key period, and when the next epoch is due. Pure.

Every region folds the same `keys.epochs` topic with these functions, so every region
picks the same epoch for a period and derives the same keys without talking to others.

- An epoch takes effect at `started_at`, always a period boundary of its own schedule.
- The epoch in force at time t is the greatest, in the order (started_at, created_at,
  epoch_id), among the epochs with started_at <= t. So a later epoch takes over at its
  start, and of two epochs starting at the same boundary the one created last wins.
- A scheduled epoch starts at least two periods after it is published: a license carries
  the current and the next period's keys, so the next period's key must never change
  under a license already issued (that would send every player back at once).
- An emergency epoch starts at the current period's start: from the moment every region
  has read it, the current period's key (and every later one) comes from the new epoch.
  Players holding the old current key need a new license; that is the point. Epochs
  that were published but had not yet started are withdrawn (tombstoned) by the
  rotation, since whatever leaked the old master may have leaked them too. Periods
  before the emergency epoch keep their keys (for DVR and audit).
- The key period length belongs to the chain of epochs: all epochs of one deployment
  share it, since a period number only means something on one grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.keys.errors import KeyHierarchyError
from services.keys.schedule import (
    DEFAULT_PERIOD_SECONDS,
    MAX_PERIOD_SECONDS,
    MIN_PERIOD_SECONDS,
    KeySchedule,
)
from streams.events import KeyEpoch

DEFAULT_EPOCH_SECONDS = 86_400
DEFAULT_LEAD_SECONDS = 3_600
# A scheduled epoch starts no earlier than this many periods after the current one.
SAFE_START_PERIODS = 2


@dataclass(frozen=True, slots=True)
class EpochInfo:
    """What anyone may know about an epoch: everything but its key."""

    epoch_id: str
    started_at: int
    period_seconds: int
    emergency: bool
    created_at: int
    regions: tuple[str, ...] = ()
    kek_ids: tuple[str, ...] = ()

    @classmethod
    def from_event(cls, event: KeyEpoch) -> EpochInfo:
        return cls(
            epoch_id=event.epoch_id,
            started_at=event.started_at,
            period_seconds=event.period_seconds,
            emergency=event.emergency,
            created_at=event.occurred_at,
            regions=tuple(copy.region for copy in event.wrapped_keys),
            kek_ids=tuple(copy.kek_id for copy in event.wrapped_keys),
        )

    @property
    def schedule(self) -> KeySchedule:
        return KeySchedule(self.period_seconds)

    @property
    def order(self) -> tuple[int, int, str]:
        return (self.started_at, self.created_at, self.epoch_id)


def invalid_reason(epoch: EpochInfo) -> str | None:
    """Why an epoch cannot take part in the timeline, or None. Deterministic in every region."""
    if not MIN_PERIOD_SECONDS <= epoch.period_seconds <= MAX_PERIOD_SECONDS:
        return "bad-period"
    if epoch.started_at < 0 or epoch.started_at % (epoch.period_seconds * 1000):
        return "unaligned-epoch"
    if not epoch.epoch_id:
        return "bad-epoch-id"
    return None


def in_order(epochs: Iterable[EpochInfo]) -> tuple[EpochInfo, ...]:
    """Epochs oldest first, in the order that decides which one is in force."""
    return tuple(sorted(epochs, key=lambda e: e.order))


def epoch_in_force(epochs: Iterable[EpochInfo], t_ms: int) -> EpochInfo | None:
    """The epoch whose keys hold at time t_ms, or None before the first epoch."""
    started = [e for e in epochs if e.started_at <= t_ms]
    return max(started, key=lambda e: e.order) if started else None


def epoch_for_period(epochs: Iterable[EpochInfo], period: int) -> EpochInfo | None:
    """The epoch whose keys hold for period number `period` (on the epoch's own grid)."""
    for epoch in reversed(in_order(epochs)):
        if epoch.started_at <= period * epoch.period_seconds * 1000:
            return epoch
    return None


def pending_after(epochs: Iterable[EpochInfo], t_ms: int) -> tuple[EpochInfo, ...]:
    """Epochs published to start after t_ms: what an emergency epoch from t_ms withdraws."""
    return in_order(e for e in epochs if e.started_at > t_ms)


def chain_period_seconds(epochs: Sequence[EpochInfo], wanted: int | None) -> int:
    """The period length new epochs use: the chain's, or `wanted` for the first epoch.

    Raises `period-length-change` when `wanted` differs from the chain's length.
    """
    if not epochs:
        return wanted if wanted is not None else DEFAULT_PERIOD_SECONDS
    current = in_order(epochs)[-1].period_seconds
    if wanted is not None and wanted != current:
        raise KeyHierarchyError(
            f"the epochs use {current}-s key periods; {wanted}-s periods would renumber them. "
            "Keep the period length, or start a new keys.epochs topic to change it",
            reason="period-length-change",
        )
    return current


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    """How often epochs rotate and how early the next one is published (seconds).

    `period_seconds` is the key period for the first epoch; None means the chain's (or
    the default). An explicit value that differs from the chain's is refused.
    """

    period_seconds: int | None = None
    epoch_seconds: int = DEFAULT_EPOCH_SECONDS
    lead_seconds: int = DEFAULT_LEAD_SECONDS

    def __post_init__(self) -> None:
        if self.period_seconds is not None:
            KeySchedule(self.period_seconds)
        if self.epoch_seconds <= 0 or self.lead_seconds < 0:
            raise KeyHierarchyError(
                "epoch length must be positive and lead not negative", reason="bad-policy"
            )


def first_epoch_start(schedule: KeySchedule, now_ms: int) -> int:
    """Where a first (or emergency) epoch starts: the current period's start."""
    return schedule.at(now_ms).start_ms


def earliest_safe_start(schedule: KeySchedule, now_ms: int) -> int:
    """The first boundary a scheduled epoch published at now_ms may start at."""
    return schedule.period(schedule.number_at(now_ms) + SAFE_START_PERIODS).start_ms


def next_scheduled_start(
    epochs: Sequence[EpochInfo], now_ms: int, policy: RotationPolicy, schedule: KeySchedule
) -> int | None:
    """When to start the next scheduled epoch, if it is time to publish it now; else None.

    None too when no epoch is in force (the first epoch is not a scheduled one) or when
    the next epoch is already published.
    """
    current = epoch_in_force(epochs, now_ms)
    if current is None:
        return None
    if in_order(epochs)[-1].started_at > now_ms:
        return None
    due = schedule.boundary_at_or_after(current.started_at + policy.epoch_seconds * 1000)
    if now_ms < due - policy.lead_seconds * 1000:
        return None
    return max(due, earliest_safe_start(schedule, now_ms))
