"""Key period arithmetic: which period a time falls in, where periods start and end. Pure.

Periods are numbered from the Unix epoch: period `n` of a schedule with length `L` seconds
covers `[n * L * 1000, (n + 1) * L * 1000)` epoch milliseconds, so every region (and
every packager) computes the same numbers without talking to anyone. Times are epoch
milliseconds and never negative.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.keys.errors import KeyHierarchyError

# A few minutes: short enough that a leaked content key exposes little, long enough that
# licenses (which carry the current and the next period) are fetched rarely.
DEFAULT_PERIOD_SECONDS = 120
# Below this, a period is shorter than a couple of typical live segments.
MIN_PERIOD_SECONDS = 10
MAX_PERIOD_SECONDS = 86_400
# Period numbers and times stay inside a signed 64-bit long (the Avro `long`).
MAX_TIME_MS = 2**63 - 1


@dataclass(frozen=True, slots=True, order=True)
class KeyPeriod:
    """One key period: its number and `[start_ms, end_ms)`."""

    number: int
    start_ms: int
    end_ms: int

    def contains(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms


@dataclass(frozen=True, slots=True)
class KeySchedule:
    """Periods of `period_seconds` each, numbered from the Unix epoch."""

    period_seconds: int = DEFAULT_PERIOD_SECONDS

    def __post_init__(self) -> None:
        if not MIN_PERIOD_SECONDS <= self.period_seconds <= MAX_PERIOD_SECONDS:
            raise KeyHierarchyError(
                f"key period must be {MIN_PERIOD_SECONDS}..{MAX_PERIOD_SECONDS} s, "
                f"not {self.period_seconds}",
                reason="bad-period",
            )

    @property
    def period_ms(self) -> int:
        return self.period_seconds * 1000

    def number_at(self, t_ms: int) -> int:
        """The number of the period that holds t_ms."""
        _check_time(t_ms)
        return t_ms // self.period_ms

    def period(self, number: int) -> KeyPeriod:
        """Period `number`; raises `bad-period` for a negative or out-of-range number."""
        if number < 0 or (number + 1) * self.period_ms > MAX_TIME_MS:
            raise KeyHierarchyError(f"no key period {number}", reason="bad-period")
        start = number * self.period_ms
        return KeyPeriod(number, start, start + self.period_ms)

    def at(self, t_ms: int) -> KeyPeriod:
        """The period that holds t_ms (start <= t_ms < end)."""
        return self.period(self.number_at(t_ms))

    def current_and_next(self, t_ms: int) -> tuple[KeyPeriod, KeyPeriod]:
        """The period holding t_ms and the one after it: what one license carries."""
        current = self.at(t_ms)
        return current, self.period(current.number + 1)

    def is_boundary(self, t_ms: int) -> bool:
        """True when a period starts exactly at t_ms."""
        _check_time(t_ms)
        return t_ms % self.period_ms == 0

    def boundary_at_or_after(self, t_ms: int) -> int:
        """The first period start at or after t_ms."""
        _check_time(t_ms)
        return -(-t_ms // self.period_ms) * self.period_ms


def _check_time(t_ms: int) -> None:
    if not 0 <= t_ms <= MAX_TIME_MS:
        raise KeyHierarchyError(f"time {t_ms} ms is out of range", reason="bad-period")
