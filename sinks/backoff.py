"""The retry schedule a sink runner follows while its destination pushes back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff, capped: `initial * factor ** (attempt - 1)`, at most `cap` seconds.

    A destination's own `retry_after` hint raises the delay (never above the cap), so a
    sink that knows it needs longer is not hammered on the short early attempts.
    """

    initial: float = 0.2
    factor: float = 2.0
    cap: float = 10.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.cap < self.initial:
            raise ValueError(f"need 0 < initial <= cap and factor >= 1, got {self}")

    def delay(self, attempt: int, retry_after: float = 0.0) -> float:
        """Seconds to wait before retry `attempt` (1 for the first retry)."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        # Past ~64 doublings the float would overflow long after the cap was reached.
        exponential = self.initial * self.factor ** min(attempt - 1, 64)
        return min(self.cap, max(exponential, retry_after))
