"""QoE windows: telemetry samples folded into tumbling-window aggregates with a k-anonymity floor.

Pure functions in two stages, matching the two agents that call them:

1. `partials_of_blocks(blocks)` folds the samples of decoded `qoe.telemetry` blocks
   (from any mix of partitions) into one `Partial` per (window, serving_region,
   cdn, content_id); `partials_of(samples)` does the same for sample events. A partial
   holds only mergeable state: counts, sums, value histograms and distinct sets of viewer
   pseudonyms and sessions (`processors.distinct`), so partials from every partition
   combine by union into exactly the figures one pass over all samples would give.
2. `fold_partial` merges partials into the open windows of one serving region
   (`RegionWindows`), and `close_windows` publishes every window the watermark has passed.

Time. A sample's event time is its player clock (`sampled_at`), but never later than the
bridge received it (`occurred_at`): a player clock running fast cannot push a sample into
the future. The watermark is the latest `occurred_at` seen, i.e. the bridge's clock, which
one bad player clock cannot move. A window [start, start + window_ms) closes when the
watermark reaches its end plus `lateness_ms`.

Late samples. A partial for a window that has already closed is not merged (a published
aggregate never changes): its samples are counted and reported in `late_samples` of the
region's next published aggregate. The samples themselves are not lost: they land in
ClickHouse's `qoe_telemetry_samples` like every other sample.

k-anonymity. Every published aggregate covers at least `k` distinct viewer pseudonyms.
A group below k is merged upward: first into (region, cdn, '*'), the union of that CDN's
small groups, then into (region, '*', '*'), the union of what is still too small. What
stays below k is suppressed; its samples are counted in `suppressed_samples` of the
region's next published aggregate. Rows never overlap, so published samples plus late
and suppressed counts always add up to every sample seen.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.distinct import EXACT_LIMIT, DistinctSet, hash64
from streams.events import QoEAggregate, QoETelemetrySample
from streams.telemetry import NONE, SampleBlock, blocks_of

ANY = "*"
# Deterministic aggregate ids: a window re-published after a restart replaces its first
# version in ClickHouse (ReplacingMergeTree on event_id) instead of adding a second row.
AGGREGATE_NAMESPACE = uuid.UUID("0f1b8f0e-6a53-4c8e-9d0c-6c9e5b7a1a42")

Group = tuple[str, str]  # (cdn, content_id) inside one serving region


@dataclass(frozen=True, slots=True)
class WindowRules:
    """How samples become aggregates: window length, allowed lateness, k-anonymity floor."""

    window_ms: int = 10_000
    lateness_ms: int = 10_000
    k: int = 10

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.lateness_ms < 0 or self.k < 1:
            raise ValueError(f"invalid window rules: {self}")
        if self.k > EXACT_LIMIT:
            # Above this, distinct counts are estimates: the floor must sit where they are exact.
            raise ValueError(f"k={self.k} is above the exact-count limit {EXACT_LIMIT}")

    def window_of(self, event_time_ms: int) -> int:
        """The start of the window holding event_time_ms."""
        return event_time_ms - event_time_ms % self.window_ms

    def closes_at(self, window_start: int) -> int:
        """The watermark at which the window starting at window_start closes."""
        return window_start + self.window_ms + self.lateness_ms


def event_time(sample: QoETelemetrySample) -> int:
    """When the sample happened: the player's clock, capped at the bridge's receipt time."""
    return min(sample.sampled_at, sample.occurred_at)


def significant(value: int, digits: int = 3) -> int:
    """value rounded to `digits` significant digits (exact below 10**digits).

    Histograms of bitrates and start times keep such values only, which bounds their size
    (at most ~900 keys per decade) at a relative error under 0.5 %.
    """
    magnitude = abs(value)
    limit: int = 10**digits
    if magnitude < limit:
        return value
    step: int = 10 ** (len(str(magnitude)) - digits)
    rounded = (magnitude + step // 2) // step * step
    return rounded if value >= 0 else -rounded


@dataclass(slots=True)
class GroupStats:
    """Mergeable QoE state of one (window, group): everything an aggregate is computed from."""

    samples: int = 0
    play_ms: int = 0
    rebuffer_ms: int = 0
    rebuffer_count: int = 0
    error_samples: int = 0
    bitrates: Counter[int] = field(default_factory=Counter)
    startups: Counter[int] = field(default_factory=Counter)
    viewers: DistinctSet = field(default_factory=DistinctSet)
    sessions: DistinctSet = field(default_factory=DistinctSet)
    exited_sessions: DistinctSet = field(default_factory=DistinctSet)

    def add(
        self,
        play_ms: int,
        rebuffer_ms: int,
        rebuffer_count: int,
        failed: bool,
        bitrate_bin: int,
        startup_ms: int,
        exited: int,
        viewer_hash: int,
        session_hash: int,
    ) -> None:
        """Count one sample: its values (startup_ms -1 if not reported, `failed` if it
        reported an error), its bitrate bin and its viewer's and session's hashes."""
        self.samples += 1
        self.play_ms += play_ms
        self.rebuffer_ms += rebuffer_ms
        self.rebuffer_count += rebuffer_count
        if failed:
            self.error_samples += 1
        self.bitrates[bitrate_bin] += 1
        if startup_ms >= 0:
            self.startups[significant(startup_ms)] += 1
        self.viewers.add_hash(viewer_hash)
        self.sessions.add_hash(session_hash)
        if exited:
            self.exited_sessions.add_hash(session_hash)

    def merge(self, other: GroupStats) -> None:
        self.samples += other.samples
        self.play_ms += other.play_ms
        self.rebuffer_ms += other.rebuffer_ms
        self.rebuffer_count += other.rebuffer_count
        self.error_samples += other.error_samples
        self.bitrates.update(other.bitrates)
        self.startups.update(other.startups)
        self.viewers.update(other.viewers)
        self.sessions.update(other.sessions)
        self.exited_sessions.update(other.exited_sessions)

    def copy(self) -> GroupStats:
        return GroupStats(
            self.samples,
            self.play_ms,
            self.rebuffer_ms,
            self.rebuffer_count,
            self.error_samples,
            Counter(self.bitrates),
            Counter(self.startups),
            self.viewers.copy(),
            self.sessions.copy(),
            self.exited_sessions.copy(),
        )

    @property
    def rebuffer_ratio(self) -> float:
        """Stalled time over stalled plus playing time; 0 when neither happened."""
        total = self.rebuffer_ms + self.play_ms
        return self.rebuffer_ms / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.samples,
            "play": self.play_ms,
            "rebuf": self.rebuffer_ms,
            "rebufn": self.rebuffer_count,
            "err": self.error_samples,
            # JSON object keys are strings; pairs keep the ints ints.
            "br": list(self.bitrates.items()),
            "start": list(self.startups.items()),
            "v": self.viewers.to_json(),
            "s": self.sessions.to_json(),
            "x": self.exited_sessions.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupStats:
        return cls(
            samples=int(data["n"]),
            play_ms=int(data["play"]),
            rebuffer_ms=int(data["rebuf"]),
            rebuffer_count=int(data["rebufn"]),
            error_samples=int(data["err"]),
            bitrates=Counter({int(v): int(c) for v, c in data["br"]}),
            startups=Counter({int(v): int(c) for v, c in data["start"]}),
            viewers=DistinctSet.from_json(data["v"]),
            sessions=DistinctSet.from_json(data["s"]),
            exited_sessions=DistinctSet.from_json(data["x"]),
        )


def percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """Nearest-rank percentile of a value histogram (value -> occurrences); None if empty.

    Bitrates are weighted per sample, start times per session that reported one.

    The smallest value v with at least ceil(fraction * n) observations <= v, so the
    median of an even count is the lower middle value.
    """
    total = sum(histogram.values())
    if total == 0:
        return None
    # Rounded first so that 0.95 * 60 (57.000000000000007 in floats) ranks 57, not 58.
    rank = max(1, math.ceil(round(fraction * total, 9)))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return float(value)
    return float(max(histogram))


@dataclass(slots=True)
class Partial:
    """The mergeable state of one (window, serving region, cdn, content) from one batch."""

    window_start: int
    serving_region: str
    cdn: str
    content_id: str
    stats: GroupStats
    # The latest occurred_at (bridge clock) in the batch this partial came from.
    watermark_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "w": self.window_start,
            "r": self.serving_region,
            "c": self.cdn,
            "t": self.content_id,
            "wm": self.watermark_ms,
            "st": self.stats.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Partial:
        return cls(
            window_start=int(data["w"]),
            serving_region=str(data["r"]),
            cdn=str(data["c"]),
            content_id=str(data["t"]),
            stats=GroupStats.from_json(data["st"]),
            watermark_ms=int(data["wm"]),
        )


def partials_of(samples: Iterable[QoETelemetrySample], rules: WindowRules) -> list[Partial]:
    """Fold sample events into one partial per (window, serving region, cdn, content)."""
    blocks = [SampleBlock.from_record(block.to_avro()) for block in blocks_of(samples, 1)]
    return partials_of_blocks(blocks, rules)


def partials_of_blocks(blocks: Iterable[SampleBlock], rules: WindowRules) -> list[Partial]:
    """Fold decoded `qoe.telemetry` blocks into one partial per (window, serving region,
    cdn, content): the same partials as `partials_of` over their samples.

    Works on the blocks' columns: a context (session, viewer, content, CDN, region) is
    hashed once per block, each sample is a few integers.
    """
    stats: dict[tuple[int, int], GroupStats] = {}
    # (region, cdn, content) of each place a group key refers to, and places by name.
    places: dict[tuple[str, str, str], int] = {}
    # Within a batch of blocks sessions, viewers and bitrates repeat: hash and bin once.
    hashes: dict[str, int] = {}
    bins: dict[int, int] = {}
    window_ms = rules.window_ms
    watermark = 0
    for block in blocks:
        received = block.occurred_at
        watermark = max(watermark, received)
        contexts = []
        for session, viewer, content, cdn, serving_region in block.contexts:
            place = places.setdefault((serving_region, cdn, content), len(places))
            session_hash = hashes.get(session)
            if session_hash is None:
                session_hash = hashes[session] = hash64(session)
            viewer_hash = hashes.get(viewer)
            if viewer_hash is None:
                viewer_hash = hashes[viewer] = hash64(viewer)
            contexts.append((place, session_hash, viewer_hash))
        for context, sampled_at, bitrate, play, stalls, stalled, startup, exited, error in zip(
            block.context, block.sampled_at, block.bitrate_kbps, block.play_ms,
            block.rebuffer_count, block.rebuffer_ms, block.startup_ms,
            block.exited_before_start, block.error_code, strict=True,
        ):  # fmt: skip
            place, session_hash, viewer_hash = contexts[context]
            at = min(sampled_at, received)  # `event_time`
            key = (at - at % window_ms, place)
            group = stats.get(key)
            if group is None:
                group = stats[key] = GroupStats()
            bitrate_bin = bins.get(bitrate)
            if bitrate_bin is None:
                bitrate_bin = bins[bitrate] = significant(bitrate)
            group.add(
                play, stalled, stalls, error != NONE, bitrate_bin, startup, exited,
                viewer_hash, session_hash,
            )  # fmt: skip
    names = list(places)
    return [
        Partial(window, *names[place], group, watermark) for (window, place), group in stats.items()
    ]


@dataclass(slots=True)
class RegionWindows:
    """The open windows of one serving region and what its next aggregate must report."""

    serving_region: str
    # The latest bridge time seen for this region: windows close by it.
    watermark_ms: int = 0
    # Every window starting before this has been closed (published or suppressed).
    closed_before_ms: int = 0
    windows: dict[int, dict[Group, GroupStats]] = field(default_factory=dict)
    # Counted but not yet reported in a published aggregate.
    pending_late: int = 0
    pending_suppressed: int = 0
    # Running totals since this state began, for metrics and logs.
    late_total: int = 0
    suppressed_samples_total: int = 0
    suppressed_groups_total: int = 0
    published_total: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "r": self.serving_region,
            "wm": self.watermark_ms,
            "cb": self.closed_before_ms,
            "w": [
                [start, [[cdn, content, s.to_json()] for (cdn, content), s in groups.items()]]
                for start, groups in self.windows.items()
            ],
            "pl": self.pending_late,
            "ps": self.pending_suppressed,
            "lt": self.late_total,
            "sst": self.suppressed_samples_total,
            "sgt": self.suppressed_groups_total,
            "pt": self.published_total,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegionWindows:
        return cls(
            serving_region=str(data["r"]),
            watermark_ms=int(data["wm"]),
            closed_before_ms=int(data["cb"]),
            windows={
                int(start): {
                    (str(cdn), str(content)): GroupStats.from_json(s) for cdn, content, s in groups
                }
                for start, groups in data["w"]
            },
            pending_late=int(data["pl"]),
            pending_suppressed=int(data["ps"]),
            late_total=int(data["lt"]),
            suppressed_samples_total=int(data["sst"]),
            suppressed_groups_total=int(data["sgt"]),
            published_total=int(data["pt"]),
        )

    @property
    def open_samples(self) -> int:
        """Samples held in windows not yet closed."""
        return sum(s.samples for groups in self.windows.values() for s in groups.values())


def fold_partial(state: RegionWindows, partial: Partial) -> None:
    """Merge a partial into its window, or count its samples late if the window has closed.

    Mutates state: the agents keep one state per region and fold whole batches into it.
    """
    if partial.serving_region != state.serving_region:
        raise ValueError(
            f"a partial of {partial.serving_region} folded into {state.serving_region}"
        )
    state.watermark_ms = max(state.watermark_ms, partial.watermark_ms)
    if partial.window_start < state.closed_before_ms:
        state.pending_late += partial.stats.samples
        state.late_total += partial.stats.samples
        return
    groups = state.windows.setdefault(partial.window_start, {})
    key = (partial.cdn, partial.content_id)
    current = groups.get(key)
    if current is None:
        groups[key] = partial.stats.copy()
    else:
        current.merge(partial.stats)


def advance_watermark(state: RegionWindows, watermark_ms: int) -> None:
    """Move the watermark forward (never back): the idle timer's way to close quiet windows."""
    state.watermark_ms = max(state.watermark_ms, watermark_ms)


@dataclass(frozen=True, slots=True)
class PublishedGroup:
    """One row the k-anonymity plan lets out: its group (cdn/content may be '*') and figures."""

    cdn: str
    content_id: str
    stats: GroupStats
    merged_groups: int


@dataclass(frozen=True, slots=True)
class AnonymityPlan:
    """What a closed window publishes, and what it withholds."""

    published: tuple[PublishedGroup, ...]
    suppressed_samples: int
    suppressed_groups: int


def _union(parts: Iterable[GroupStats]) -> GroupStats:
    merged = GroupStats()
    for part in parts:
        merged.merge(part)
    return merged


def anonymity_plan(groups: Mapping[Group, GroupStats], k: int) -> AnonymityPlan:
    """Publish groups with >= k viewers; merge the rest upward (cdn, '*') then ('*', '*').

    Rows are disjoint: each group's samples appear in exactly one published row, or are
    suppressed. Groups are visited in sorted order, so the plan does not depend on the
    order partials arrived in.
    """
    published: list[PublishedGroup] = []
    small_by_cdn: dict[str, list[tuple[str, GroupStats]]] = {}
    for (cdn, content), stats in sorted(groups.items()):
        if stats.viewers.count() >= k:
            published.append(PublishedGroup(cdn, content, stats, 0))
        else:
            small_by_cdn.setdefault(cdn, []).append((content, stats))
    leftovers: list[GroupStats] = []
    leftover_groups = 0
    for cdn, small in sorted(small_by_cdn.items()):
        merged = _union(stats for _, stats in small)
        # A single small group merged with nothing is still the same small group.
        if len(small) > 1 and merged.viewers.count() >= k:
            published.append(PublishedGroup(cdn, ANY, merged, len(small)))
        else:
            leftovers.extend(stats for _, stats in small)
            leftover_groups += len(small)
    if leftovers:
        merged = _union(leftovers)
        if leftover_groups > 1 and merged.viewers.count() >= k:
            published.append(PublishedGroup(ANY, ANY, merged, leftover_groups))
            leftovers, leftover_groups = [], 0
    return AnonymityPlan(
        published=tuple(published),
        suppressed_samples=sum(s.samples for s in leftovers),
        suppressed_groups=leftover_groups,
    )


def aggregate_id(serving_region: str, cdn: str, content_id: str, window_start: int) -> str:
    """The event id of a window's aggregate: the same every time that window is published."""
    return str(
        uuid.uuid5(AGGREGATE_NAMESPACE, f"{serving_region}|{cdn}|{content_id}|{window_start}")
    )


def close_windows(
    state: RegionWindows, rules: WindowRules, *, now_ms: int, region: str
) -> list[QoEAggregate]:
    """Close every window the watermark has passed; the aggregates to publish, oldest first.

    `now_ms` stamps `occurred_at`; `region` is the emitting region. Pending late and
    suppressed counts go into the first aggregate published; if a whole closing window is
    suppressed they wait for the next one. Mutates state.
    """
    out: list[QoEAggregate] = []
    for start in sorted(state.windows):
        if rules.closes_at(start) > state.watermark_ms:
            break
        groups = state.windows.pop(start)
        state.closed_before_ms = max(state.closed_before_ms, start + rules.window_ms)
        plan = anonymity_plan(groups, rules.k)
        state.pending_suppressed += plan.suppressed_samples
        state.suppressed_samples_total += plan.suppressed_samples
        state.suppressed_groups_total += plan.suppressed_groups
        for row in plan.published:
            out.append(
                _aggregate(state, row, start, start + rules.window_ms, now_ms=now_ms, region=region)
            )
            state.pending_late = state.pending_suppressed = 0
            state.published_total += 1
    # Windows without any sample still close: a late partial for them counts as late.
    passed = state.watermark_ms - rules.lateness_ms
    state.closed_before_ms = max(
        state.closed_before_ms, passed - passed % rules.window_ms if passed > 0 else 0
    )
    return out


def _aggregate(
    state: RegionWindows,
    row: PublishedGroup,
    window_start: int,
    window_end: int,
    *,
    now_ms: int,
    region: str,
) -> QoEAggregate:
    stats = row.stats
    return QoEAggregate(
        event_id=aggregate_id(state.serving_region, row.cdn, row.content_id, window_start),
        occurred_at=now_ms,
        region=region,
        window_start=window_start,
        window_end=window_end,
        serving_region=state.serving_region,
        cdn=row.cdn,
        content_id=row.content_id,
        sessions=stats.sessions.count(),
        viewers=stats.viewers.count(),
        samples=stats.samples,
        rebuffer_ratio=stats.rebuffer_ratio,
        video_start_ms_p50=percentile(stats.startups, 0.5),
        exits_before_start=stats.exited_sessions.count(),
        error_rate=stats.error_samples / stats.samples if stats.samples else 0.0,
        bitrate_p50_kbps=percentile(stats.bitrates, 0.5) or 0.0,
        bitrate_p95_kbps=percentile(stats.bitrates, 0.95) or 0.0,
        late_samples=state.pending_late,
        play_ms=stats.play_ms,
        rebuffer_ms=stats.rebuffer_ms,
        suppressed_samples=state.pending_suppressed,
        merged_groups=row.merged_groups,
    )
