"""The blast radius of a leaked key: which contents and periods it opens. Pure.

- A content key opens one period of one content: HKDF outputs say nothing about other
  periods, contents or the master.
- An epoch master key opens every content (known or not yet) for every period the epoch
  governs: from its start until a later epoch takes over. Until then (no emergency
  rotation yet) the exposure is open-ended: `end_ms` is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.keys.errors import KeyHierarchyError
from services.keys.timeline import EpochInfo, in_order


@dataclass(frozen=True, slots=True)
class Exposure:
    """What a leak exposes: contents (None: every content) over periods [first, last]."""

    leaked: Literal["content-key", "master-key"]
    epoch_id: str
    content_ids: tuple[str, ...] | None
    start_ms: int
    end_ms: int | None  # exclusive; None while the leaked epoch still governs
    period_seconds: int

    @property
    def first_period(self) -> int:
        return self.start_ms // (self.period_seconds * 1000)

    @property
    def last_period(self) -> int | None:
        """The last exposed period, inclusive; None while open-ended."""
        if self.end_ms is None:
            return None
        return self.end_ms // (self.period_seconds * 1000) - 1

    @property
    def periods(self) -> int | None:
        """How many periods are exposed (per content); None while open-ended."""
        last = self.last_period
        return None if last is None else max(0, last - self.first_period + 1)

    @property
    def contained(self) -> bool:
        return self.end_ms is not None


def content_key_exposure(
    content_id: str, period: int, epoch_id: str, period_seconds: int
) -> Exposure:
    """A leaked content key: exactly one period of one content."""
    start = period * period_seconds * 1000
    return Exposure(
        "content-key", epoch_id, (content_id,), start, start + period_seconds * 1000, period_seconds
    )


def master_key_exposure(epochs: Sequence[EpochInfo], epoch_id: str) -> Exposure:
    """A leaked epoch master: every content, from the epoch's start until it was replaced."""
    ordered = in_order(epochs)
    index = next((i for i, e in enumerate(ordered) if e.epoch_id == epoch_id), None)
    if index is None:
        raise KeyHierarchyError(f"no epoch {epoch_id} in the timeline", reason="no-epoch")
    epoch = ordered[index]
    # Every later epoch in the order starts no earlier: the first of them ends this one.
    later = ordered[index + 1 :]
    end = min((e.started_at for e in later), default=None)
    return Exposure("master-key", epoch_id, None, epoch.started_at, end, epoch.period_seconds)
