"""The QoE control plane's decisions: pathway health, hysteresis, failover and steering. Pure.

Health is judged per (pathway, content), a pathway being one region's origins through one
CDN, and content '*' standing for the region as a whole. Heartbeats (`IngestHealth`) say
whether a region's sources are alive and its segments fresh; QoE aggregates say whether
players on one (region, CDN) see errors or stalls. A pathway goes down only after being
bad for a confirmation window, and comes back only after being good for a longer one, so
no flood of contradictory inputs can make it flap. Operators drain and restore regions or
pathways. Every change becomes a `FailoverDecision` and, where the order players should
try pathways changes, a `SteeringState`.

No clock, no Kafka: time comes in as arguments (`arrived_at` for an input, `now` for a
tick) and ids from `ControlContext.new_id`, so the agent, `liveward replay` and the tests
run the very same fold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from liveward.settings import Settings
from liveward.topology import pathways, split_pathway
from streams.events import (
    Evidence,
    FailoverDecision,
    IngestHealth,
    IngestStatus,
    OperatorAction,
    OperatorCommand,
    OperatorCommandOutcome,
    QoEAggregate,
    SteeringState,
)

# The steering entry every content without its own entry falls back to.
DEFAULT_CONTENT = "*"


@dataclass(frozen=True, slots=True)
class FailoverRules:
    """Thresholds and windows of the control plane (seconds unless named otherwise)."""

    # A source whose newest beat is this old has missed a beat (beats come every second).
    beat_missed_after_s: float = 1.5
    # Bad for this long before failing over: with heartbeats, 2.5 s of silence in all.
    confirm_s: float = 1.0
    # Good for this long before failing back; doubled after each repeated failure.
    recover_s: float = 10.0
    recover_max_s: float = 120.0
    # Up for this long, a pathway's failure count starts again from zero.
    failures_reset_s: float = 300.0
    # Beats and aggregates stamped further than this ahead of their arrival are counted and
    # ignored: a clock running ahead would keep a dead region alive. Those stamped as far
    # behind are counted but kept: an old beat cannot make anything look more alive than
    # it was, and dropping it would make a worker that lags disagree with a replay.
    max_clock_skew_s: float = 2.0
    # Time is judged at most this far past the newest accepted beat, so a stalled or lagging
    # input stream freezes decisions instead of failing everything over.
    watermark_slack_s: float = 1.5
    # After a beat arrives this late (a worker catching up on a backlog, one partition
    # ahead of another), nothing fails over until inputs have been on time this long: a
    # region whose beats are still queued behind is not silent.
    catch_up_hold_s: float = 2.0
    # The newest segment of a content in a region may be this old (3 segments of 2 s).
    segment_lag_s: float = 6.0
    # A dead source is forgotten this long after it died, once another of its group lives;
    # a content nothing was heard of for this long has ended, and is forgotten too.
    forget_after_s: float = 60.0
    # A content other regions produce may be missing from a region this long (start-up).
    no_source_grace_s: float = 10.0
    max_error_rate: float = 0.05
    max_rebuffer_ratio: float = 0.05
    # Fewer sessions than this in a window is no evidence either way.
    qoe_min_sessions: int = 5
    # The '*' default follows QoE only when this many contents agree (a CDN-wide problem).
    qoe_min_contents: int = 2
    # Consecutive bad windows before QoE counts as bad (one bad window is a blip).
    qoe_bad_windows: int = 2
    # Without a new aggregate for this long (no players left on it), QoE says nothing.
    qoe_stale_s: float = 30.0
    steering_ttl_s: int = 2

    def recover_ms(self, failures: int) -> int:
        """The failback window after `failures` failovers in a row."""
        window = self.recover_s * 2 ** max(0, failures - 1)
        return _ms(min(window, max(self.recover_s, self.recover_max_s)))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class ControlContext:
    """What a fold needs besides state and input: rules, pathways, who emits, ids."""

    rules: FailoverRules
    # Every pathway id in default preference order (regions in settings order, then CDNs).
    pathway_order: tuple[str, ...]
    emitter_region: str
    new_id: Callable[[], str]

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(split_pathway(p)[0] for p in self.pathway_order))

    @property
    def cdns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(split_pathway(p)[1] for p in self.pathway_order))


def context_for(settings: Settings, *, new_id: Callable[[], str]) -> ControlContext:
    """The context the worker, `liveward replay` and `liveward control` all judge with."""
    rules = FailoverRules(
        steering_ttl_s=settings.media.steering_ttl_s,
        # Three segments late: a packager that beats but makes nothing is failing.
        segment_lag_s=3 * settings.media.segment_seconds,
    )
    order = tuple(p.id for p in pathways(settings))
    return ControlContext(rules, order, settings.region, new_id)


@dataclass(frozen=True, slots=True)
class Source:
    """What the control plane knows of one beating ingest point, packager or origin."""

    region: str
    role: str
    content_id: str
    last_beat_at: int
    failing_since: int | None = None
    last_segment_seq: int = -1
    last_segment_at: int = 0

    def dead_since(self, rules: FailoverRules) -> int:
        silent_from = self.last_beat_at + _ms(rules.beat_missed_after_s)
        if self.failing_since is not None:
            return min(self.failing_since, silent_from)
        return silent_from

    def alive(self, now: int, rules: FailoverRules) -> bool:
        return now < self.dead_since(rules)


@dataclass(frozen=True, slots=True)
class QoERecord:
    """The newest QoE aggregate of one (region, CDN, content), and its run of bad windows."""

    window_end: int
    last_at: int
    sessions: int
    error_rate: float
    rebuffer_ratio: float
    bad_windows: int = 0
    bad_since: int | None = None


@dataclass(frozen=True, slots=True)
class PathwayHealth:
    """Hysteresis of one (pathway, content): up or down, and how long it has been bad/good."""

    up: bool = True
    reason: str = ""
    changed_at: int = 0
    failures: int = 0
    bad_since: int | None = None
    good_since: int | None = None
    last_good_at: int | None = None


@dataclass(frozen=True, slots=True)
class Steering:
    """The pathway priority last published for a content."""

    priority: tuple[str, ...]
    version: int
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """A pathway is bad now: since when (continuously), why, and the measurements."""

    since: int
    reason: str
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class ControlState:
    """Everything the control plane folds; `durable()` is the part that survives restarts."""

    sources: Mapping[str, Source] = field(default_factory=dict)
    # Content id -> when it was first heard of (event time).
    contents: Mapping[str, int] = field(default_factory=dict)
    qoe: Mapping[tuple[str, str, str], QoERecord] = field(default_factory=dict)
    health: Mapping[tuple[str, str], PathwayHealth] = field(default_factory=dict)
    # Drained regions and pathway ids.
    drains: frozenset[str] = frozenset()
    steering: Mapping[str, Steering] = field(default_factory=dict)
    # Newest accepted beat (event time); None before the first.
    watermark: int | None = None
    first_beat_at: int | None = None
    evaluated_at: int = 0
    # Until this arrival time, failover is held: inputs were arriving late (catching up).
    late_until: int = 0
    counters: Mapping[str, int] = field(default_factory=dict)

    def health_of(self, pathway: str, content: str) -> PathwayHealth:
        return self.health.get((pathway, content), _UP)

    def counted(self, name: str) -> ControlState:
        return replace(self, counters={**self.counters, name: self.counters.get(name, 0) + 1})


_UP = PathwayHealth()


@dataclass(frozen=True, slots=True)
class ControlOutputs:
    """What one step produced, in the order it must be published."""

    decisions: tuple[FailoverDecision, ...] = ()
    steering: tuple[SteeringState, ...] = ()
    outcome: OperatorCommandOutcome | None = None
    # Contents that ended: their steering entries are to be deleted (tombstoned).
    retired: tuple[str, ...] = ()

    def __add__(self, other: ControlOutputs) -> ControlOutputs:
        return ControlOutputs(
            self.decisions + other.decisions,
            self.steering + other.steering,
            other.outcome or self.outcome,
            self.retired + other.retired,
        )


ControlInput = IngestHealth | QoEAggregate | OperatorCommand


def ingest(
    state: ControlState, event: ControlInput, *, arrived_at: int, ctx: ControlContext
) -> tuple[ControlState, ControlOutputs]:
    """Take one input that arrived at `arrived_at` (epoch ms) in. Heartbeats and aggregates
    are only observed (health is judged on `tick`); an operator command applies at once."""
    if isinstance(event, IngestHealth):
        return observe_beat(state, event, arrived_at=arrived_at, ctx=ctx), ControlOutputs()
    if isinstance(event, QoEAggregate):
        return observe_aggregate(state, event, arrived_at=arrived_at, ctx=ctx), ControlOutputs()
    return apply_command(state, event, now=arrived_at, ctx=ctx)


def _check_clock(
    state: ControlState, occurred_at: int, arrived_at: int, rules: FailoverRules
) -> tuple[ControlState, bool]:
    """Count a stamp far from its arrival; False when the input must be ignored (ahead)."""
    skew = occurred_at - arrived_at
    if skew > _ms(rules.max_clock_skew_s):
        return state.counted("clock-ahead"), False
    if skew < -_ms(rules.max_clock_skew_s):
        return state.counted("clock-behind"), True
    return state, True


def _seen_content(state: ControlState, content_id: str, at: int) -> Mapping[str, int]:
    if content_id == DEFAULT_CONTENT or content_id in state.contents:
        return state.contents
    return {**state.contents, content_id: at}


def observe_beat(
    state: ControlState, beat: IngestHealth, *, arrived_at: int, ctx: ControlContext
) -> ControlState:
    """Take a heartbeat in; beats from unknown regions or with clocks far off only count."""
    if beat.region not in ctx.regions:
        return state.counted("unknown-region")
    state, usable = _check_clock(state, beat.occurred_at, arrived_at, ctx.rules)
    if not usable:
        return state
    if beat.occurred_at < arrived_at - _ms(ctx.rules.max_clock_skew_s):
        state = replace(state, late_until=arrived_at + _ms(ctx.rules.catch_up_hold_s))
    previous = state.sources.get(beat.source_id)
    if previous is not None and beat.occurred_at <= previous.last_beat_at:
        return state.counted("out-of-order")
    failing_since: int | None = None
    if beat.status is IngestStatus.FAILING:
        earlier = previous.failing_since if previous is not None else None
        failing_since = earlier if earlier is not None else beat.occurred_at
    source = Source(
        region=beat.region,
        role=str(beat.role),
        content_id=beat.content_id,
        last_beat_at=beat.occurred_at,
        failing_since=failing_since,
        last_segment_seq=beat.last_segment_seq,
        last_segment_at=beat.last_segment_at,
    )
    return replace(
        state,
        sources={**state.sources, beat.source_id: source},
        contents=_seen_content(state, beat.content_id, beat.occurred_at),
        watermark=max(state.watermark or 0, beat.occurred_at),
        first_beat_at=state.first_beat_at if state.first_beat_at is not None else beat.occurred_at,
    )


def observe_aggregate(
    state: ControlState, aggregate: QoEAggregate, *, arrived_at: int, ctx: ControlContext
) -> ControlState:
    """Take a QoE aggregate in; late, thin, skewed or unknown-pathway ones only count."""
    rules = ctx.rules
    if aggregate.serving_region not in ctx.regions or aggregate.cdn not in ctx.cdns:
        return state.counted("unknown-pathway")
    state, usable = _check_clock(state, aggregate.occurred_at, arrived_at, rules)
    if not usable:
        return state
    key = (aggregate.serving_region, aggregate.cdn, aggregate.content_id)
    previous = state.qoe.get(key)
    if previous is not None and aggregate.window_end <= previous.window_end:
        return state.counted("late-aggregate")
    if aggregate.sessions < rules.qoe_min_sessions:
        return state.counted("thin-aggregate")
    bad = (
        aggregate.error_rate > rules.max_error_rate
        or aggregate.rebuffer_ratio > rules.max_rebuffer_ratio
    )
    run = previous.bad_windows if previous is not None and bad else 0
    since = previous.bad_since if previous is not None and run else None
    record = QoERecord(
        window_end=aggregate.window_end,
        last_at=aggregate.occurred_at,
        sessions=aggregate.sessions,
        error_rate=aggregate.error_rate,
        rebuffer_ratio=aggregate.rebuffer_ratio,
        bad_windows=run + 1 if bad else 0,
        bad_since=(since if since is not None else aggregate.occurred_at) if bad else None,
    )
    return replace(
        state,
        qoe={**state.qoe, key: record},
        contents=_seen_content(state, aggregate.content_id, aggregate.occurred_at),
    )


def effective_now(state: ControlState, now: int, rules: FailoverRules) -> int:
    """The time health is judged at: `now`, but never past the newest beat plus the slack
    (inputs that stopped arriving freeze judgement), and never before the last judgement."""
    judged = (
        now if state.watermark is None else min(now, state.watermark + _ms(rules.watermark_slack_s))
    )
    return max(judged, state.evaluated_at)


def tick(
    state: ControlState, *, now: int, ctx: ControlContext
) -> tuple[ControlState, ControlOutputs]:
    """Judge every (pathway, content) at `now`: hysteresis, failover, failback, steering."""
    rules = ctx.rules
    at = effective_now(state, now, rules)
    state, retired = _retire_ended_contents(_forget_replaced_sources(state, at, rules), at, rules)
    state = replace(state, evaluated_at=at)
    outputs = ControlOutputs(retired=retired)
    index = SourceIndex.of(state.sources.values())
    for content in (DEFAULT_CONTENT, *sorted(state.contents)):
        state, produced = _judge_content(
            state, content, at, ctx, index=index, hold=now < state.late_until
        )
        outputs += produced
    return state, outputs


def _forget_replaced_sources(state: ControlState, at: int, rules: FailoverRules) -> ControlState:
    """Drop sources dead for long whose group (region, role, content) has a live member: a
    restarted packager beats under a new id, and the registry must not grow with each one.
    A group with no live member keeps its dead: they are what says the group is down."""
    live_groups = {
        (s.region, s.role, s.content_id) for s in state.sources.values() if s.alive(at, rules)
    }
    forget_ms = _ms(rules.forget_after_s)
    kept = {
        source_id: s
        for source_id, s in state.sources.items()
        if s.alive(at, rules)
        or at - s.dead_since(rules) < forget_ms
        or (s.region, s.role, s.content_id) not in live_groups
    }
    if len(kept) == len(state.sources):
        return state
    return replace(state, sources=kept)


def _retire_ended_contents(
    state: ControlState, at: int, rules: FailoverRules
) -> tuple[ControlState, tuple[str, ...]]:
    """Forget contents nothing was heard of for `forget_after_s`: the stream has ended, and
    its stale health must neither steer a restart of it nor block an operator's drain."""
    heard = dict(state.contents)
    for source in state.sources.values():
        if source.content_id in heard:
            heard[source.content_id] = max(heard[source.content_id], source.last_beat_at)
    for (_, _, content), record in state.qoe.items():
        if content in heard:
            heard[content] = max(heard[content], record.last_at)
    ended = tuple(sorted(c for c, last in heard.items() if at - last > _ms(rules.forget_after_s)))
    if not ended:
        return state, ()
    gone = frozenset(ended)
    return replace(
        state,
        sources={k: s for k, s in state.sources.items() if s.content_id not in gone},
        contents={c: t for c, t in state.contents.items() if c not in gone},
        qoe={k: r for k, r in state.qoe.items() if k[2] not in gone},
        health={k: h for k, h in state.health.items() if k[1] not in gone},
        steering={c: s for c, s in state.steering.items() if c not in gone},
    ), ended


def _judge_content(
    state: ControlState,
    content: str,
    at: int,
    ctx: ControlContext,
    *,
    index: SourceIndex,
    hold: bool,
) -> tuple[ControlState, ControlOutputs]:
    rules = ctx.rules
    # Heartbeats speak for a region, so each region is judged once for all its CDNs.
    beats = {r: heartbeat_condition(state, r, content, at, rules, index) for r in ctx.regions}
    old_health = {p: state.health_of(p, content) for p in ctx.pathway_order}
    new_health: dict[str, PathwayHealth] = {}
    proposed_down: list[tuple[str, Condition]] = []
    went_up: list[str] = []
    healthy: list[str] = []
    for pathway, health in old_health.items():
        region, cdn = split_pathway(pathway)
        condition = _worst_of(beats[region], qoe_condition(state, region, cdn, content, at, rules))
        stepped, transition = _hysteresis(health, condition, at, rules)
        new_health[pathway] = stepped
        if transition == "up":
            went_up.append(pathway)
        if transition == "down" and condition is not None:
            proposed_down.append((pathway, condition))
        if stepped.up and transition != "down" and condition is None:
            healthy.append(pathway)
    # Fail over only to somewhere healthy: with nowhere to go, moving players helps no one,
    # and a control plane that lost its inputs must not empty the list. Held pathways keep
    # their bad_since and go down as soon as a healthy one appears.
    went_down = proposed_down if healthy and not hold else []
    for pathway, condition in went_down:
        health = new_health[pathway]
        new_health[pathway] = replace(
            health, up=False, reason=condition.reason, changed_at=at, failures=health.failures + 1
        )
    health_map = dict(state.health)
    for pathway, health in new_health.items():
        if health == _UP:
            health_map.pop((pathway, content), None)
        else:
            health_map[(pathway, content)] = health
    before = priority_of(old_health, state.drains, ctx.pathway_order)
    after = priority_of(new_health, state.drains, ctx.pathway_order)
    decisions: list[FailoverDecision] = []
    if went_down:
        first, condition = min(went_down, key=lambda item: before.index(item[0]))
        evidence = tuple(e for _, c in went_down for e in c.evidence)
        decisions.append(
            _decision(ctx, content, first, after[0], condition.reason, evidence, at, operator=False)
        )
    if went_up:
        back = min(went_up, key=after.index)
        evidence = tuple(
            Evidence(
                metric=f"good-for-s:{p}",
                value=(at - (old_health[p].good_since or at)) / 1000,
                threshold=rules.recover_ms(old_health[p].failures) / 1000,
            )
            for p in went_up
        )
        decisions.append(
            _decision(ctx, content, before[0], back, "recovered", evidence, at, operator=False)
        )
    state = replace(state, health=health_map)
    return _publish(state, content, before, after, tuple(decisions), at, ctx)


def _hysteresis(
    health: PathwayHealth, condition: Condition | None, at: int, rules: FailoverRules
) -> tuple[PathwayHealth, str | None]:
    """One step of one pathway's hysteresis: the new health and 'down', 'up' or None.

    Bad must hold continuously for `confirm_s`, good for the failback window. Continuity is
    judged from what was observed: a badness never starts before the last time the pathway
    was seen good, so contradictory inputs reset the clock instead of adding up.
    """
    if condition is not None:
        if health.bad_since is not None:
            floor = health.bad_since
        else:
            floor = health.last_good_at if health.last_good_at is not None else condition.since
        bad_since = max(condition.since, floor)
        stepped = replace(health, bad_since=bad_since, good_since=None)
        if health.up and at - bad_since >= _ms(rules.confirm_s):
            return stepped, "down"
        return stepped, None
    good_since = health.good_since if health.good_since is not None else at
    stepped = replace(health, bad_since=None, good_since=good_since, last_good_at=at)
    if not health.up:
        if at - good_since >= rules.recover_ms(health.failures):
            return replace(stepped, up=True, reason="", changed_at=at), "up"
        return stepped, None
    if health.failures and at - health.changed_at >= _ms(rules.failures_reset_s):
        stepped = replace(stepped, failures=0)
    if stepped.failures == 0 and stepped.reason == "" and stepped.bad_since is None:
        # A healthy pathway with nothing to remember is not stored at all (see _UP).
        return _UP, None
    return stepped, None


def pathway_condition(
    state: ControlState, pathway: str, content: str, at: int, rules: FailoverRules
) -> Condition | None:
    """Why `pathway` is bad for `content` at `at`, or None when nothing says it is."""
    region, cdn = split_pathway(pathway)
    return _worst_of(
        heartbeat_condition(state, region, content, at, rules),
        qoe_condition(state, region, cdn, content, at, rules),
    )


def _worst_of(*conditions: Condition | None) -> Condition | None:
    """Bad if anything says so, since the earliest of them, with all the evidence."""
    found = [c for c in conditions if c is not None]
    if not found:
        return None
    earliest = min(found, key=lambda c: c.since)
    return Condition(
        since=earliest.since,
        reason=earliest.reason,
        evidence=tuple(e for c in found for e in c.evidence),
    )


@dataclass(frozen=True, slots=True)
class SourceIndex:
    """Sources grouped once per judgement: by region, and the regions each content has."""

    by_region: Mapping[str, tuple[Source, ...]]
    regions_of: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, sources: Iterable[Source]) -> SourceIndex:
        by_region: dict[str, list[Source]] = {}
        regions_of: dict[str, set[str]] = {}
        for source in sources:
            by_region.setdefault(source.region, []).append(source)
            regions_of.setdefault(source.content_id, set()).add(source.region)
        return cls(
            {r: tuple(s) for r, s in by_region.items()},
            {c: frozenset(r) for c, r in regions_of.items()},
        )


def heartbeat_condition(
    state: ControlState,
    region: str,
    content: str,
    at: int,
    rules: FailoverRules,
    index: SourceIndex | None = None,
) -> Condition | None:
    """Heartbeat health of a region for a content ('*': the region as a whole).

    Sources are grouped by (role, content); sources of content '*' (e.g. an origin serving
    everything) count for every content. A content is bad in a region when one of its
    groups has no live member, when its newest segment is too old, or when other regions
    produce it and this one has no source for it. The region as a whole is bad when none
    of its sources lives, or a group of '*' sources has no live member.
    """
    index = index or SourceIndex.of(state.sources.values())
    in_region = list(index.by_region.get(region, ()))
    wide = [s for s in in_region if s.content_id == DEFAULT_CONTENT]
    bad: list[Condition] = []
    if content == DEFAULT_CONTENT:
        own = in_region
        elsewhere = any(r != region for r in index.by_region)
        first_heard = state.first_beat_at
    else:
        own = [s for s in in_region if s.content_id == content]
        elsewhere = bool(index.regions_of.get(content, frozenset()) - {region})
        first_heard = state.contents.get(content)
    if not own and elsewhere and first_heard is not None:
        since = first_heard + _ms(rules.no_source_grace_s)
        if at >= since:
            evidence = Evidence(metric=f"no-source:{region}/{content}", value=1.0, threshold=0.0)
            bad.append(Condition(since=since, reason="no-source", evidence=(evidence,)))
    groups: dict[tuple[str, str], list[Source]] = {}
    for source in wide if content == DEFAULT_CONTENT else own + wide:
        groups.setdefault((source.role, source.content_id), []).append(source)
    if content == DEFAULT_CONTENT and in_region:
        groups[("ANY", DEFAULT_CONTENT)] = in_region
    for (role, _), members in groups.items():
        if not any(s.alive(at, rules) for s in members):
            bad.append(_dead_group(f"{region}/{role}", members, at, rules))
    if content != DEFAULT_CONTENT:
        lag = _segment_lag(own, content, at, rules)
        if lag is not None:
            bad.append(lag)
    if not bad:
        return None
    latest = max(bad, key=lambda c: c.since)
    return Condition(
        since=latest.since,
        reason=latest.reason,
        evidence=tuple(e for c in bad for e in c.evidence),
    )


def _dead_group(subject: str, members: list[Source], at: int, rules: FailoverRules) -> Condition:
    """The group died with its last member: silent, or saying it is failing."""
    last = max(members, key=lambda s: s.dead_since(rules))
    since = last.dead_since(rules)
    if last.failing_since is not None and last.failing_since <= since:
        evidence = Evidence(metric=f"source-failing:{subject}", value=1.0, threshold=0.0)
        return Condition(since=since, reason="source-failing", evidence=(evidence,))
    evidence = Evidence(
        metric=f"heartbeat-silence-s:{subject}",
        value=(at - last.last_beat_at) / 1000,
        threshold=rules.beat_missed_after_s,
    )
    return Condition(since=since, reason="heartbeats-missed", evidence=(evidence,))


def _segment_lag(
    scope: Iterable[Source], content: str, at: int, rules: FailoverRules
) -> Condition | None:
    made = [
        s.last_segment_at
        for s in scope
        if s.content_id == content and s.last_segment_seq >= 0 and s.alive(at, rules)
    ]
    if not made:
        return None
    newest = max(made)
    lag_ms = _ms(rules.segment_lag_s)
    if at - newest <= lag_ms:
        return None
    return Condition(
        since=newest + lag_ms,
        reason="segment-lag",
        evidence=(
            Evidence(
                metric=f"segment-lag-s:{content}",
                value=(at - newest) / 1000,
                threshold=rules.segment_lag_s,
            ),
        ),
    )


def qoe_condition(
    state: ControlState, region: str, cdn: str, content: str, at: int, rules: FailoverRules
) -> Condition | None:
    """QoE health of (region, CDN) for a content: bad after `qoe_bad_windows` bad windows in
    a row. For '*', bad when at least `qoe_min_contents` contents have fresh evidence there
    and all of it is bad (a CDN-wide problem); stale or thin evidence says nothing."""
    stale_ms = _ms(rules.qoe_stale_s)
    if content == DEFAULT_CONTENT:
        records = [r for (rg, cd, _), r in state.qoe.items() if rg == region and cd == cdn]
    else:
        record = state.qoe.get((region, cdn, content))
        records = [record] if record is not None else []
    fresh = [r for r in records if at - r.last_at <= stale_ms]
    enough = rules.qoe_min_contents if content == DEFAULT_CONTENT else 1
    if len(fresh) < enough or any(r.bad_windows < rules.qoe_bad_windows for r in fresh):
        return None
    pathway = f"{region}.{cdn}"
    evidence: list[Evidence] = []
    for r in fresh:
        if r.error_rate > rules.max_error_rate:
            evidence.append(Evidence(metric=f"error-rate:{pathway}", value=r.error_rate,
                                     threshold=rules.max_error_rate))  # fmt: skip
        if r.rebuffer_ratio > rules.max_rebuffer_ratio:
            evidence.append(Evidence(metric=f"rebuffer-ratio:{pathway}", value=r.rebuffer_ratio,
                                     threshold=rules.max_rebuffer_ratio))  # fmt: skip
    return Condition(
        since=max(r.bad_since or r.last_at for r in fresh),
        reason=evidence[0].metric.split(":", 1)[0],
        evidence=tuple(evidence),
    )


def is_drained(pathway: str, drains: frozenset[str]) -> bool:
    return pathway in drains or split_pathway(pathway)[0] in drains


def priority_of(
    health: Mapping[str, PathwayHealth], drains: frozenset[str], order: tuple[str, ...]
) -> tuple[str, ...]:
    """Pathways in the order players should try them: up and not drained first, then
    drained ones still up (an operator's drain yields to availability), then the down ones;
    within each class, the default order. Down pathways stay listed so a player always has
    somewhere to go."""

    def rank(pathway: str) -> tuple[int, int]:
        up = health.get(pathway, _UP).up
        klass = 2 if not up else (1 if is_drained(pathway, drains) else 0)
        return klass, order.index(pathway)

    return tuple(sorted(order, key=rank))


def _decision(
    ctx: ControlContext,
    content: str,
    from_pathway: str,
    to_pathway: str,
    reason: str,
    evidence: tuple[Evidence, ...],
    at: int,
    *,
    operator: bool,
) -> FailoverDecision:
    return FailoverDecision(
        event_id=ctx.new_id(),
        occurred_at=at,
        region=ctx.emitter_region,
        decision_id=ctx.new_id(),
        content_id=content,
        from_pathway=from_pathway,
        to_pathway=to_pathway,
        reason=reason,
        evidence=evidence,
        decided_at=at,
        operator=operator,
    )


def _publish(
    state: ControlState,
    content: str,
    before: tuple[str, ...],
    after: tuple[str, ...],
    decisions: tuple[FailoverDecision, ...],
    at: int,
    ctx: ControlContext,
) -> tuple[ControlState, ControlOutputs]:
    """A steering state for `content` when its priority changed; decisions as they are."""
    if after == before:
        return state, ControlOutputs(decisions=decisions)
    previous = state.steering.get(content)
    # Versions only grow, across restarts too: the decision time, or one more.
    version = max(at, previous.version + 1) if previous is not None else at
    decision_id = decisions[-1].decision_id if decisions else None
    published = SteeringState(
        event_id=ctx.new_id(),
        occurred_at=at,
        region=ctx.emitter_region,
        content_id=content,
        pathway_priority=after,
        version=version,
        ttl_seconds=ctx.rules.steering_ttl_s,
        decision_id=decision_id,
    )
    steering = {**state.steering, content: Steering(after, version, decision_id)}
    return replace(state, steering=steering), ControlOutputs(decisions, (published,))


def pathways_of_target(target: str, ctx: ControlContext) -> tuple[str, ...]:
    """The pathways a drain/restore target names: a region's, or one pathway; () if none."""
    if target in ctx.pathway_order:
        return (target,)
    return tuple(p for p in ctx.pathway_order if split_pathway(p)[0] == target)


def apply_command(
    state: ControlState, command: OperatorCommand, *, now: int, ctx: ControlContext
) -> tuple[ControlState, ControlOutputs]:
    """Apply an operator's drain or restore at once (no confirmation window), or refuse it.

    A drain is refused when it would leave some content (or the '*' default) without a
    pathway that is both up and not drained: `last-healthy-region`.
    """
    targets = pathways_of_target(command.target, ctx)
    if not targets:
        known = ", ".join(ctx.regions)
        return state, _outcome(
            ctx, command, now, False, "unknown-target",
            f"{command.target!r} is neither a region ({known}) nor a pathway id",
        )  # fmt: skip
    if command.action is OperatorAction.DRAIN:
        if all(is_drained(p, state.drains) for p in targets):
            return state, _outcome(
                ctx, command, now, True, "already-drained", f"{command.target} is drained already"
            )
        drains = state.drains | {command.target}
        stranded = [
            content
            for content in (DEFAULT_CONTENT, *sorted(state.contents))
            if not any(
                state.health_of(p, content).up and not is_drained(p, drains)
                for p in ctx.pathway_order
            )
        ]
        if stranded:
            serving = [
                p for p in ctx.pathway_order
                if state.health_of(p, DEFAULT_CONTENT).up and not is_drained(p, state.drains)
            ]  # fmt: skip
            return state, _outcome(
                ctx, command, now, False, "last-healthy-region",
                f"draining {command.target} would leave no healthy pathway for "
                f"{', '.join(stranded)} (serving now: {', '.join(serving) or 'none'})",
            )  # fmt: skip
        reason, accepted_reason = "operator-drain", "drained"
    else:
        drains = frozenset(d for d in state.drains if d != command.target and d not in targets)
        if drains == state.drains:
            return state, _outcome(
                ctx, command, now, True, "not-drained", f"{command.target} is not drained"
            )
        still = [p for p in targets if is_drained(p, drains)]
        if still:
            return state, _outcome(
                ctx, command, now, False, "region-drained",
                f"{', '.join(still)} stay drained with their region: restore the region",
            )  # fmt: skip
        reason, accepted_reason = "operator-restore", "restored"
    at = max(now, state.evaluated_at)
    outputs = ControlOutputs()
    for content in (DEFAULT_CONTENT, *sorted(state.contents)):
        health = {p: state.health_of(p, content) for p in ctx.pathway_order}
        before = priority_of(health, state.drains, ctx.pathway_order)
        after = priority_of(health, drains, ctx.pathway_order)
        if before == after:
            continue
        if command.action is OperatorAction.DRAIN:
            moved_from = min(targets, key=before.index)
            moved_to = after[0]
        else:
            moved_from, moved_to = before[0], min(targets, key=after.index)
        evidence = (Evidence(metric=f"operator:{command.operator}", value=1.0, threshold=0.0),)
        decision = _decision(
            ctx, content, moved_from, moved_to, reason, evidence, at, operator=True
        )
        state, produced = _publish(state, content, before, after, (decision,), at, ctx)
        outputs += produced
    state = replace(state, drains=drains)
    detail = f"{command.target} {accepted_reason} by {command.operator}: {command.reason}"
    return state, outputs + _outcome(
        ctx, command, at, True, accepted_reason, detail,
        tuple(d.decision_id for d in outputs.decisions),
    )  # fmt: skip


def _outcome(
    ctx: ControlContext,
    command: OperatorCommand,
    at: int,
    accepted: bool,
    reason: str,
    detail: str,
    decision_ids: tuple[str, ...] = (),
) -> ControlOutputs:
    return ControlOutputs(
        outcome=OperatorCommandOutcome(
            event_id=ctx.new_id(),
            occurred_at=at,
            region=ctx.emitter_region,
            command_id=command.command_id,
            accepted=accepted,
            reason=reason,
            detail=detail,
            decision_ids=decision_ids,
        )
    )


def durable(state: ControlState) -> dict[str, Any]:
    """The part of the state worth keeping across a restart, as JSON-ready data.

    Beat times and QoE windows are left out: after a restart they are re-learnt within
    seconds, and stale ones would fail regions over on the restart's gap. Sources are kept
    (so a region that died while the worker was down is still missed), as are contents,
    pathway health, drains and published steering.
    """
    return {
        "sources": {
            sid: [s.region, s.role, s.content_id] for sid, s in sorted(state.sources.items())
        },
        "contents": dict(sorted(state.contents.items())),
        "first_beat_at": state.first_beat_at,
        "health": [
            [pathway, content, h.up, h.reason, h.changed_at, h.failures]
            for (pathway, content), h in sorted(state.health.items())
            if not h.up or h.failures
        ],
        "drains": sorted(state.drains),
        "steering": {
            content: [list(s.priority), s.version, s.decision_id]
            for content, s in sorted(state.steering.items())
        },
    }


def restore(data: Mapping[str, Any], *, now: int) -> ControlState:
    """A state from `durable()` output: every known source is taken as last heard at `now`,
    so one that stays silent is missed after the usual window, not at once."""
    return ControlState(
        sources={
            sid: Source(region=region, role=role, content_id=content, last_beat_at=now)
            for sid, (region, role, content) in data["sources"].items()
        },
        contents=dict(data["contents"]),
        first_beat_at=data["first_beat_at"],
        health={
            (pathway, content): PathwayHealth(
                up=up, reason=reason, changed_at=changed_at, failures=failures
            )
            for pathway, content, up, reason, changed_at, failures in data["health"]
        },
        drains=frozenset(data["drains"]),
        steering={
            content: Steering(tuple(priority), version, decision_id)
            for content, (priority, version, decision_id) in data["steering"].items()
        },
        evaluated_at=now,
    )


def fold_log(
    log: Iterable[tuple[int, ControlInput]], *, until: int, ctx: ControlContext, tick_ms: int = 250
) -> tuple[ControlState, list[ControlOutputs]]:
    """Replay a recorded input log as the agent lived it, from an empty state.

    `log` holds (arrival ms, input) in arrival order; between inputs and after the last,
    up to `until`, the fold ticks every `tick_ms` as the agent's timer does. Over a quiet
    gap it ticks only until everything time-driven has settled (the longest window), then
    jumps: nothing can change after that without a new input.
    """
    rules = ctx.rules
    settle_ms = _ms(
        max(rules.failures_reset_s, rules.recover_max_s, rules.forget_after_s, rules.qoe_stale_s)
    )
    state = ControlState()
    produced: list[ControlOutputs] = []

    def tick_through(start: int, end: int) -> None:
        nonlocal state
        for at in range(start + tick_ms, min(end, start + settle_ms + tick_ms), tick_ms):
            state, outputs = tick(state, now=at, ctx=ctx)
            if outputs != ControlOutputs():
                produced.append(outputs)

    last: int | None = None
    for arrived, event in log:
        if last is not None:
            tick_through(last, arrived)
        state, outputs = ingest(state, event, arrived_at=arrived, ctx=ctx)
        if outputs != ControlOutputs():
            produced.append(outputs)
        last = arrived
    if last is not None:
        tick_through(last, until)
    state, outputs = tick(state, now=until, ctx=ctx)
    if outputs != ControlOutputs():
        produced.append(outputs)
    return state, produced
