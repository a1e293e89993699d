"""What the console shows, folded from events by pure functions: no clock, no Kafka, no I/O.

`fold(state, event)` takes one event from the topics the console follows; `observe_probe`
takes one answer (or silence) of a CDN edge's `/healthz`; `snapshot(state, topology, now)`
turns the state into the JSON the page renders. Time comes in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from liveward.settings import Settings
from streams.codec import AvroEvent
from streams.events import (
    FailoverDecision,
    IngestHealth,
    IngestStatus,
    KeyEpoch,
    KeyRotated,
    OperatorAction,
    OperatorCommand,
    OperatorCommandOutcome,
    QoEAggregate,
    RevocationRequested,
    SteeringState,
)

# Bounds, so a console left open for days holds what a person can read, not the log.
MAX_DECISIONS = 25
MAX_REVOCATIONS = 25
MAX_ROTATIONS = 25
MAX_QOE_POINTS = 60
MAX_PENDING_COMMANDS = 100
# Steering of this content governs every content that has none of its own.
EVERY_CONTENT = "*"


@dataclass(frozen=True, slots=True)
class Topology:
    """The regions and CDNs the console draws, the content its player watches, and when a
    silent heartbeat source counts as dead (a little above the control plane's 1.5 s, so
    one late beat does not make a region blink)."""

    regions: tuple[str, ...]
    cdns: tuple[str, ...]
    content_id: str
    dead_after_ms: int = 3_000
    probe_stale_ms: int = 5_000

    @classmethod
    def of(cls, settings: Settings) -> Topology:
        return cls(tuple(settings.regions), tuple(settings.media.cdns), settings.console.content_id)

    def pathways(self) -> tuple[str, ...]:
        return tuple(f"{region}.{cdn}" for region in self.regions for cdn in self.cdns)


@dataclass(frozen=True, slots=True)
class Beat:
    """The newest heartbeat of one ingest point, packager or origin."""

    region: str
    role: str
    status: str
    at: int


@dataclass(frozen=True, slots=True)
class Decision:
    """A failover decision as the page lists it."""

    decision_id: str
    content_id: str
    from_pathway: str
    to_pathway: str
    reason: str
    decided_at: int
    operator: bool
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revocation request (viewer and device subjects are already pseudonyms)."""

    revocation_id: str
    scope: str
    subject: str
    reason: str
    requested_by: str
    at: int


@dataclass(frozen=True, slots=True)
class Rotation:
    """A key period announced (`period`) or a new key epoch (`epoch`, `emergency-epoch`)."""

    key: str
    kind: str
    at: int
    epoch_id: str
    content_id: str = ""
    period: int = -1
    key_id: str = ""
    period_end: int = 0


@dataclass(frozen=True, slots=True)
class QoEPoint:
    """One QoE window of one pathway: windows of several contents are merged, weighted by
    sessions."""

    window_end: int
    sessions: int
    rebuffer_ratio: float
    bitrate_kbps: float
    error_rate: float


@dataclass(frozen=True, slots=True)
class Probe:
    """The newest answer of a CDN edge's `/healthz`: ok, or why not."""

    ok: bool
    at: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConsoleState:
    """Everything the console has folded so far."""

    sources: Mapping[str, Beat] = field(default_factory=dict)
    # Content id -> (pathway priority, version).
    steering: Mapping[str, tuple[tuple[str, ...], int]] = field(default_factory=dict)
    decisions: tuple[Decision, ...] = ()
    revocations: tuple[Revocation, ...] = ()
    rotations: tuple[Rotation, ...] = ()
    qoe: Mapping[str, tuple[QoEPoint, ...]] = field(default_factory=dict)
    probes: Mapping[str, Probe] = field(default_factory=dict)
    # Operator commands waiting for their outcome: command id -> (action, target).
    pending_commands: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    drains: frozenset[str] = frozenset()
    events: int = 0


def fold(state: ConsoleState, event: AvroEvent) -> ConsoleState:
    """The state after one event; events the console does not show only count."""
    state = replace(state, events=state.events + 1)
    if isinstance(event, IngestHealth):
        return _beat(state, event)
    if isinstance(event, SteeringState):
        return _steering(state, event)
    if isinstance(event, FailoverDecision):
        return _decision(state, event)
    if isinstance(event, RevocationRequested):
        return _revocation(state, event)
    if isinstance(event, KeyRotated):
        return _rotation(
            state,
            Rotation(
                key=f"period:{event.content_id}:{event.period}:{event.epoch_id}",
                kind="period",
                at=event.occurred_at,
                epoch_id=event.epoch_id,
                content_id=event.content_id,
                period=event.period,
                key_id=event.key_id,
                period_end=event.period_end,
            ),
        )
    if isinstance(event, KeyEpoch):
        return _rotation(
            state,
            Rotation(
                key=f"epoch:{event.epoch_id}",
                kind="emergency-epoch" if event.emergency else "epoch",
                at=event.started_at if event.emergency else event.occurred_at,
                epoch_id=event.epoch_id,
            ),
        )
    if isinstance(event, QoEAggregate):
        return _aggregate(state, event)
    if isinstance(event, OperatorCommand):
        pending = dict(state.pending_commands)
        pending[event.command_id] = (event.action.value, event.target)
        while len(pending) > MAX_PENDING_COMMANDS:
            del pending[next(iter(pending))]
        return replace(state, pending_commands=pending)
    if isinstance(event, OperatorCommandOutcome):
        return _outcome(state, event)
    return state


def _beat(state: ConsoleState, event: IngestHealth) -> ConsoleState:
    known = state.sources.get(event.source_id)
    if known is not None and known.at > event.occurred_at:
        return state  # an older beat read late says nothing new
    beat = Beat(event.region, event.role.value, event.status.value, event.occurred_at)
    return replace(state, sources={**state.sources, event.source_id: beat})


def _steering(state: ConsoleState, event: SteeringState) -> ConsoleState:
    known = state.steering.get(event.content_id)
    if known is not None and known[1] > event.version:
        return state
    entry = (tuple(event.pathway_priority), event.version)
    return replace(state, steering={**state.steering, event.content_id: entry})


def _decision(state: ConsoleState, event: FailoverDecision) -> ConsoleState:
    if any(d.decision_id == event.decision_id for d in state.decisions):
        return state
    decision = Decision(
        decision_id=event.decision_id,
        content_id=event.content_id,
        from_pathway=event.from_pathway,
        to_pathway=event.to_pathway,
        reason=event.reason,
        decided_at=event.decided_at,
        operator=event.operator,
        evidence=tuple(f"{e.metric} {e.value:g} (limit {e.threshold:g})" for e in event.evidence),
    )
    newest_first = sorted(
        (*state.decisions, decision), key=lambda d: (d.decided_at, d.decision_id), reverse=True
    )
    return replace(state, decisions=tuple(newest_first[:MAX_DECISIONS]))


def _revocation(state: ConsoleState, event: RevocationRequested) -> ConsoleState:
    if any(r.revocation_id == event.revocation_id for r in state.revocations):
        return state
    revocation = Revocation(
        event.revocation_id,
        event.scope.value.lower(),
        event.subject,
        event.reason,
        event.requested_by,
        event.occurred_at,
    )
    newest_first = sorted(
        (*state.revocations, revocation), key=lambda r: (r.at, r.revocation_id), reverse=True
    )
    return replace(state, revocations=tuple(newest_first[:MAX_REVOCATIONS]))


def _rotation(state: ConsoleState, rotation: Rotation) -> ConsoleState:
    # Epochs are re-published when re-wrapped: one line per epoch, not per copy.
    if any(r.key == rotation.key for r in state.rotations):
        return state
    newest_first = sorted((*state.rotations, rotation), key=lambda r: (r.at, r.key), reverse=True)
    return replace(state, rotations=tuple(newest_first[:MAX_ROTATIONS]))


def _aggregate(state: ConsoleState, event: QoEAggregate) -> ConsoleState:
    pathway = f"{event.serving_region}.{event.cdn}"
    point = QoEPoint(
        event.window_end,
        event.sessions,
        event.rebuffer_ratio,
        event.bitrate_p50_kbps,
        event.error_rate,
    )
    points = {p.window_end: p for p in state.qoe.get(pathway, ())}
    same_window = points.get(point.window_end)
    points[point.window_end] = point if same_window is None else _merge(same_window, point)
    series = tuple(sorted(points.values(), key=lambda p: p.window_end)[-MAX_QOE_POINTS:])
    return replace(state, qoe={**state.qoe, pathway: series})


def _merge(a: QoEPoint, b: QoEPoint) -> QoEPoint:
    sessions = a.sessions + b.sessions
    if sessions == 0:
        return replace(b, sessions=0)

    def weighted(x: float, y: float) -> float:
        return (x * a.sessions + y * b.sessions) / sessions

    return QoEPoint(
        a.window_end,
        sessions,
        weighted(a.rebuffer_ratio, b.rebuffer_ratio),
        weighted(a.bitrate_kbps, b.bitrate_kbps),
        weighted(a.error_rate, b.error_rate),
    )


def _outcome(state: ConsoleState, event: OperatorCommandOutcome) -> ConsoleState:
    command = state.pending_commands.get(event.command_id)
    if command is None:
        return state
    pending = {k: v for k, v in state.pending_commands.items() if k != event.command_id}
    action, target = command
    drains = state.drains
    if event.accepted and action == OperatorAction.DRAIN.value:
        drains = drains | {target}
    elif event.accepted and action == OperatorAction.RESTORE.value:
        drains = drains - {target}
    return replace(state, pending_commands=pending, drains=drains)


def observe_probe(
    state: ConsoleState, pathway: str, *, ok: bool, at: int, reason: str = ""
) -> ConsoleState:
    """The state after a CDN edge answered its health check (`ok`), or failed to (`reason`)."""
    return replace(state, probes={**state.probes, pathway: Probe(ok, at, reason)})


def steering_of(state: ConsoleState, content_id: str) -> tuple[tuple[str, ...], int] | None:
    """The pathway priority governing a content: its own, else that of every content."""
    return state.steering.get(content_id) or state.steering.get(EVERY_CONTENT)


def priority_of(state: ConsoleState, topology: Topology) -> tuple[str, ...]:
    """The pathway priority players are steered by, as the steering service answers it: the
    published one, pathways it does not name last; every pathway in settings order before
    anything is published."""
    steering = steering_of(state, topology.content_id)
    listed = steering[0] if steering is not None else ()
    return listed + tuple(p for p in topology.pathways() if p not in listed)


def region_state(state: ConsoleState, topology: Topology, region: str, now: int) -> str:
    """`down` (no live heartbeat source), `draining` (an operator drained it), `serving`
    (its pathway leads the steering), `standby` (up, not leading) or `unknown` (never heard
    of). A region whose processes do not beat is judged by its CDN edges' health checks."""
    sources = [s for s in state.sources.values() if s.region == region]
    if sources:
        alive = any(
            now - s.at < topology.dead_after_ms and s.status != IngestStatus.FAILING.value
            for s in sources
        )
    else:
        probes = [
            p
            for pathway, p in state.probes.items()
            if pathway.rpartition(".")[0] == region and now - p.at < topology.probe_stale_ms
        ]
        if not probes:
            return "unknown"
        alive = any(p.ok for p in probes)
    if not alive:
        return "down"
    if region in state.drains:
        return "draining"
    priority = priority_of(state, topology)
    return "serving" if priority and priority[0].rpartition(".")[0] == region else "standby"


def pathway_state(
    state: ConsoleState, topology: Topology, pathway: str, region_is: str, now: int
) -> str:
    """`down` (its region is down, its edge fails its health check, or an operator drained
    it), `up` (the edge answers), or `unknown` (not checked lately)."""
    if region_is == "down":
        return "down"
    if pathway in state.drains:
        return "draining"
    probe = state.probes.get(pathway)
    if probe is None or now - probe.at >= topology.probe_stale_ms:
        return "unknown"
    return "up" if probe.ok else "down"


def snapshot(state: ConsoleState, topology: Topology, now: int) -> dict[str, Any]:
    """The JSON `/api/state` answers, as of `now` (epoch ms)."""
    steering = steering_of(state, topology.content_id)
    priority = priority_of(state, topology)
    regions = []
    for region in topology.regions:
        judged = region_state(state, topology, region, now)
        cdns = []
        for cdn in topology.cdns:
            pathway = f"{region}.{cdn}"
            probe = state.probes.get(pathway)
            series = state.qoe.get(pathway, ())
            cdns.append(
                {
                    "cdn": cdn,
                    "pathway": pathway,
                    "state": pathway_state(state, topology, pathway, judged, now),
                    "rank": priority.index(pathway) + 1 if pathway in priority else None,
                    "probe": None
                    if probe is None
                    else {"ok": probe.ok, "at": probe.at, "reason": probe.reason},
                    "qoe": _point(series[-1]) if series else None,
                }
            )
        sources = sorted(
            ((sid, s) for sid, s in state.sources.items() if s.region == region),
            key=lambda item: (item[1].role, item[0]),
        )
        regions.append(
            {
                "name": region,
                "state": judged,
                "drained": region in state.drains,
                "sources": [
                    {
                        "id": sid,
                        "role": s.role.lower(),
                        "status": s.status.lower(),
                        "alive": now - s.at < topology.dead_after_ms,
                        "silent_ms": max(0, now - s.at),
                    }
                    for sid, s in sources
                ],
                "cdns": cdns,
            }
        )
    period = next(
        (r for r in state.rotations if r.kind == "period" and r.content_id == topology.content_id),
        None,
    )
    return {
        "now": now,
        "content_id": topology.content_id,
        "regions": regions,
        "steering": None
        if steering is None
        else {"priority": list(steering[0]), "version": steering[1]},
        "drains": sorted(state.drains),
        "decisions": [
            {
                "decision_id": d.decision_id,
                "content_id": d.content_id,
                "from": d.from_pathway,
                "to": d.to_pathway,
                "reason": d.reason,
                "decided_at": d.decided_at,
                "operator": d.operator,
                "evidence": list(d.evidence),
            }
            for d in state.decisions
        ],
        "revocations": [
            {
                "revocation_id": r.revocation_id,
                "scope": r.scope,
                "subject": r.subject,
                "reason": r.reason,
                "requested_by": r.requested_by,
                "at": r.at,
            }
            for r in state.revocations
        ],
        "rotations": [
            {
                "kind": r.kind,
                "at": r.at,
                "epoch_id": r.epoch_id,
                "content_id": r.content_id or None,
                "period": r.period if r.kind == "period" else None,
                "key_id": r.key_id or None,
            }
            for r in state.rotations
        ],
        "key_period": None
        if period is None
        else {"period": period.period, "epoch_id": period.epoch_id, "ends_at": period.period_end},
        "qoe": {
            pathway: [_point(p) for p in series] for pathway, series in sorted(state.qoe.items())
        },
        "events": state.events,
    }


def _point(point: QoEPoint) -> dict[str, Any]:
    return {
        "window_end": point.window_end,
        "sessions": point.sessions,
        "rebuffer_ratio": point.rebuffer_ratio,
        "bitrate_kbps": point.bitrate_kbps,
        "error_rate": point.error_rate,
    }
