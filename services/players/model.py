"""A live player's decisions, without I/O: the buffer and its stalls, which pathway to use,
where to start in a live window, when to reload, when a playlist has gone stale. Pure:
every method takes the time as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from services.players.hls import MediaPlaylist

# HLS: start no closer to the live edge than three target durations.
LIVE_START_SEGMENTS = 3


class Phase(StrEnum):
    WAITING = "waiting"  # not started yet: filling the buffer for the first time
    PLAYING = "playing"
    STALLED = "stalled"  # the buffer ran dry after playback started


@dataclass(slots=True)
class Playback:
    """Seconds of media buffered, drained in real time while playing.

    Playback starts once `startup_s` is buffered and, after the buffer ran dry, resumes
    once `resume_s` is. Time after the first frame is either played or stalled, so
    `played_s + stalled_s` is what the viewer wanted since then.
    """

    session_start: float
    startup_s: float
    resume_s: float
    phase: Phase = Phase.WAITING
    level_s: float = 0.0
    updated_at: float = 0.0
    first_play_at: float | None = None
    played_s: float = 0.0
    stalled_s: float = 0.0
    stall_started_at: float | None = None
    stalls: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.updated_at = self.session_start

    def advance(self, now: float) -> None:
        """Play (or stay stalled) up to now."""
        elapsed = max(0.0, now - self.updated_at)
        if self.phase is Phase.PLAYING:
            if elapsed < self.level_s:
                self.level_s -= elapsed
                self.played_s += elapsed
            else:
                self.played_s += self.level_s
                dry_at = self.updated_at + self.level_s
                self.level_s = 0.0
                self.phase = Phase.STALLED
                self.stall_started_at = dry_at
                self.stalled_s += now - dry_at
        elif self.phase is Phase.STALLED:
            self.stalled_s += elapsed
        self.updated_at = max(self.updated_at, now)

    def add(self, now: float, seconds: float) -> None:
        """A segment of `seconds` arrived at now."""
        self.advance(now)
        self.level_s += seconds
        if self.phase is Phase.WAITING and self.level_s >= self.startup_s:
            self.phase = Phase.PLAYING
            self.first_play_at = now
        elif self.phase is Phase.STALLED and self.level_s >= self.resume_s:
            self._end_stall(now)

    def finish(self, now: float) -> None:
        """The session ends at now: account for the time up to it, close an open stall."""
        self.advance(now)
        if self.phase is Phase.STALLED:
            self._end_stall(now)

    def _end_stall(self, now: float) -> None:
        assert self.stall_started_at is not None
        self.stalls.append((self.stall_started_at, now))
        self.stall_started_at = None
        self.phase = Phase.PLAYING

    def wanted_s(self, now: float) -> float:
        """Seconds the viewer wanted to watch: since the first frame, or since the session
        began if playback never started."""
        start = self.first_play_at if self.first_play_at is not None else self.session_start
        return max(0.0, now - start)

    @property
    def startup_delay_s(self) -> float | None:
        return None if self.first_play_at is None else self.first_play_at - self.session_start


@dataclass(slots=True)
class PathwayChooser:
    """Which pathway to use: the first in the steering priority that has not failed lately.

    A pathway that failed is avoided for `penalty_s`; pathways the steering manifest does
    not list are used only after every listed one (HLS asks players to prefer the list).
    """

    known: tuple[str, ...]
    priority: tuple[str, ...]
    penalty_s: float
    penalized_until: dict[str, float] = field(default_factory=dict)

    def ordered(self) -> list[str]:
        listed = [p for p in self.priority if p in self.known]
        return listed + [p for p in self.known if p not in listed]

    def choose(self, now: float) -> str | None:
        """The pathway to use now, or None if every one is penalized."""
        for pathway in self.ordered():
            if self.penalized_until.get(pathway, 0.0) <= now:
                return pathway
        return None

    def choose_anyway(self, now: float) -> str:
        """Like choose, but when everything failed lately: the one that failed longest ago
        is retried first (ties by priority)."""
        chosen = self.choose(now)
        if chosen is not None:
            return chosen
        order = self.ordered()
        return min(order, key=lambda p: (self.penalized_until.get(p, 0.0), order.index(p)))

    def penalize(self, pathway: str, now: float) -> None:
        self.penalized_until[pathway] = now + self.penalty_s

    def steer(self, priority: tuple[str, ...]) -> None:
        self.priority = priority


def initial_priority(pathways: tuple[str, ...], default: str | None) -> tuple[str, ...]:
    """Before the first steering manifest: the playlist's PATHWAY-ID, then playlist order."""
    if default is None or default not in pathways:
        return pathways
    return (default, *(p for p in pathways if p != default))


def start_sequence(playlist: MediaPlaylist) -> int:
    """Where a live player joins: three segments from the live edge (or the window start)."""
    return max(playlist.first_seq, playlist.last_seq - LIVE_START_SEGMENTS + 1)


def reload_delay(changed: bool, target_duration: float) -> float:
    """HLS: reload a target duration after a playlist that changed, half of one otherwise."""
    return target_duration if changed else target_duration / 2


@dataclass(slots=True)
class SegmentLog:
    """Which pathway served each segment and when (epoch seconds)."""

    seqs: list[int] = field(default_factory=list)
    pathways: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def add(self, seq: int, pathway: str, at: float) -> None:
        self.seqs.append(seq)
        self.pathways.append(pathway)
        self.times.append(at)

    def __len__(self) -> int:
        return len(self.seqs)


@dataclass(frozen=True, slots=True)
class Switch:
    """A player moved from one pathway to another, and why (`steering` or a failure reason)."""

    at: float
    source: str | None
    target: str
    reason: str
