"""Which key periods a request may be answered with at a given time. Pure.

A license carries the key of the current period and of the next one, so a player
crosses a period boundary without asking again and a rotation causes no request storm.
A player behind the live edge (HLS players start three segments back; a DVR window
more) still decrypts a period that has just ended, so a request may also *name* a
period up to a short grace back (`late_grace_ms`). Nothing older and nothing beyond the
next period is ever handed out: a leaked answer exposes at most the grace, the current
and the next period of one content.
"""

from __future__ import annotations

from dataclasses import dataclass

# Default grace for players behind the live edge; covers a live HLS playlist window of
# three to five 6-s segments at any period length.
LATE_GRACE_S = 30


@dataclass(frozen=True, slots=True)
class KeyWindow:
    """Periods `oldest..current+1`; a license always holds `current` and `current + 1`."""

    oldest: int
    current: int

    @property
    def newest(self) -> int:
        return self.current + 1

    @property
    def license_periods(self) -> tuple[int, int]:
        return self.current, self.current + 1

    def allows(self, period: int) -> bool:
        return self.oldest <= period <= self.newest

    def periods(self) -> range:
        """Every period a request may name, oldest first."""
        return range(self.oldest, self.newest + 1)


def key_window(current: int, late: int) -> KeyWindow:
    """The window at a time whose period is `current`, where `late` is the period of
    that time minus the grace (the same, or earlier)."""
    return KeyWindow(oldest=min(late, current), current=current)


def clearkey_periods(window: KeyWindow, asked: tuple[int, ...]) -> tuple[int, ...]:
    """The periods a ClearKey license holds: current and next, plus each late period the
    CDM named (all of `asked` must be in the window; the caller checked). Oldest first."""
    return tuple(sorted({*window.license_periods, *asked}))
