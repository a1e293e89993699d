"""What a fleet of players experienced, as figures: availability, stalls, start-up, pathways. Pure.

Availability is player-seconds served over player-seconds wanted: a player wants media
from its first frame to the end of the run (from its start, if it never played), and is
served while it plays rather than stalls. Start-up delay is reported on its own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from liveward.topology import split_pathway
from services.players.model import SegmentLog, Switch


@dataclass(frozen=True, slots=True)
class PlayerReport:
    """One player's session."""

    player: int
    session_id: str
    started_at: float
    ended_at: float
    startup_delay_s: float | None
    wanted_s: float
    served_s: float
    stalls: tuple[tuple[float, float], ...]
    segments: SegmentLog
    switches: tuple[Switch, ...]
    errors: dict[str, int]
    skipped_segments: int

    @property
    def stalled_s(self) -> float:
        return sum(end - start for start, end in self.stalls)

    @property
    def longest_stall_s(self) -> float:
        return max((end - start for start, end in self.stalls), default=0.0)

    def first_fetch_from(self, region: str, since: float) -> float | None:
        """Epoch seconds of the first segment at or after since served by region."""
        for pathway, at in zip(self.segments.pathways, self.segments.times, strict=True):
            if at >= since and split_pathway(pathway)[0] == region:
                return at
        return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class FleetSummary:
    players: int
    started: int
    wanted_s: float
    served_s: float
    stalled_players: int
    total_stall_s: float
    longest_stall_s: float
    stall_p50_s: float | None
    stall_p99_s: float | None
    startup_p50_s: float | None
    startup_p95_s: float | None
    segments_by_pathway: dict[str, int] = field(default_factory=dict)
    switches_by_reason: dict[str, int] = field(default_factory=dict)
    errors_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def availability(self) -> float:
        return 1.0 if self.wanted_s <= 0 else self.served_s / self.wanted_s

    def as_dict(self) -> dict[str, object]:
        return {
            "players": self.players,
            "started": self.started,
            "availability": round(self.availability, 6),
            "wanted_s": round(self.wanted_s, 3),
            "served_s": round(self.served_s, 3),
            "stalled_players": self.stalled_players,
            "total_stall_s": round(self.total_stall_s, 3),
            "longest_stall_s": round(self.longest_stall_s, 3),
            "stall_p50_s": _rounded(self.stall_p50_s),
            "stall_p99_s": _rounded(self.stall_p99_s),
            "startup_p50_s": _rounded(self.startup_p50_s),
            "startup_p95_s": _rounded(self.startup_p95_s),
            "segments_by_pathway": self.segments_by_pathway,
            "switches_by_reason": self.switches_by_reason,
            "errors_by_reason": self.errors_by_reason,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def summarize(reports: Iterable[PlayerReport]) -> FleetSummary:
    players = list(reports)
    stalls = [p.stalled_s for p in players]
    startups = [p.startup_delay_s for p in players if p.startup_delay_s is not None]
    segments: Counter[str] = Counter()
    switches: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for player in players:
        segments.update(player.segments.pathways)
        switches.update(s.reason for s in player.switches if s.source is not None)
        errors.update(player.errors)
    return FleetSummary(
        players=len(players),
        started=len(startups),
        wanted_s=sum(p.wanted_s for p in players),
        served_s=sum(p.served_s for p in players),
        stalled_players=sum(1 for s in stalls if s > 0),
        total_stall_s=sum(stalls),
        longest_stall_s=max((p.longest_stall_s for p in players), default=0.0),
        stall_p50_s=percentile(stalls, 50),
        stall_p99_s=percentile(stalls, 99),
        startup_p50_s=percentile(startups, 50),
        startup_p95_s=percentile(startups, 95),
        segments_by_pathway=dict(sorted(segments.items())),
        switches_by_reason=dict(sorted(switches.items())),
        errors_by_reason=dict(sorted(errors.items())),
    )


def time_to_region(
    reports: Iterable[PlayerReport], region: str, fraction: float, since: float
) -> float | None:
    """Seconds after since until `fraction` of the players (those still playing at since)
    had fetched a segment from region; None if that many never did."""
    players = [p for p in reports if p.ended_at > since]
    if not players:
        return None
    delays = sorted(
        at - since for p in players if (at := p.first_fetch_from(region, since)) is not None
    )
    needed = max(1, math.ceil(fraction * len(players)))
    return delays[needed - 1] if len(delays) >= needed else None
