"""The console's folding: regions judged from beats, probes and steering; bounded, de-duplicated
event lists; QoE windows merged per pathway."""

from __future__ import annotations

from functools import reduce

from services.console.state import (
    MAX_DECISIONS,
    ConsoleState,
    Topology,
    fold,
    observe_probe,
    snapshot,
)
from streams.codec import AvroEvent
from streams.events import (
    Evidence,
    FailoverDecision,
    IngestHealth,
    IngestRole,
    IngestStatus,
    KeyEpoch,
    KeyRotated,
    OperatorAction,
    OperatorCommand,
    OperatorCommandOutcome,
    QoEAggregate,
    RevocationRequested,
    RevocationScope,
    SteeringState,
)

TOPOLOGY = Topology(("eu-west", "us-east"), ("cdn-a", "cdn-b"), "match-of-the-day")
T0 = 1_700_000_000_000


def beat(region: str, at: int, role: IngestRole = IngestRole.PACKAGER, n: int = 0,
         status: IngestStatus = IngestStatus.OK) -> IngestHealth:  # fmt: skip
    return IngestHealth(
        event_id=f"b-{region}-{at}-{n}",
        occurred_at=at,
        region=region,
        source_id=f"{region}-{role.value.lower()}-{n}",
        role=role,
        content_id="match-of-the-day",
        beat_seq=at // 1000,
        last_segment_seq=1,
        last_segment_at=at,
        status=status,
    )


def steering(priority: tuple[str, ...], version: int, content: str = "*") -> SteeringState:
    return SteeringState(
        event_id=f"s{version}",
        occurred_at=T0,
        region="eu-west",
        content_id=content,
        pathway_priority=priority,
        version=version,
        ttl_seconds=2,
    )


def decision(
    n: int, at: int, src: str = "eu-west.cdn-a", dst: str = "us-east.cdn-a"
) -> FailoverDecision:
    return FailoverDecision(
        event_id=f"e{n}",
        occurred_at=at,
        region="eu-west",
        decision_id=f"d{n}",
        content_id="*",
        from_pathway=src,
        to_pathway=dst,
        reason="heartbeats-missed",
        evidence=(Evidence(metric="heartbeat-silence-s:eu-west/ANY", value=2.5, threshold=1.5),),
        decided_at=at,
    )


def aggregate(region: str, cdn: str, end: int, sessions: int, rebuffer: float,
              content: str = "match-of-the-day") -> QoEAggregate:  # fmt: skip
    return QoEAggregate(
        event_id=f"q-{region}-{cdn}-{end}-{content}",
        occurred_at=end,
        region=region,
        window_start=end - 5_000,
        window_end=end,
        serving_region=region,
        cdn=cdn,
        content_id=content,
        sessions=sessions,
        viewers=sessions,
        samples=sessions * 5,
        rebuffer_ratio=rebuffer,
        exits_before_start=0,
        error_rate=0.0,
        bitrate_p50_kbps=3000.0,
        bitrate_p95_kbps=4000.0,
    )


def folded(*events: AvroEvent) -> ConsoleState:
    return reduce(fold, events, ConsoleState())


def regions(state: ConsoleState, now: int) -> dict[str, str]:
    return {r["name"]: r["state"] for r in snapshot(state, TOPOLOGY, now)["regions"]}


def test_the_region_leading_the_steering_serves_the_other_stands_by() -> None:
    state = folded(
        beat("eu-west", T0),
        beat("us-east", T0),
        steering(("eu-west.cdn-a", "us-east.cdn-a"), 1),
    )
    assert regions(state, T0 + 500) == {"eu-west": "serving", "us-east": "standby"}


def test_before_any_steering_is_published_players_go_by_settings_order() -> None:
    state = folded(beat("us-east", T0), beat("eu-west", T0))
    assert regions(state, T0) == {"eu-west": "serving", "us-east": "standby"}
    state = fold(state, steering(("us-east.cdn-b",), 1))
    view = snapshot(state, TOPOLOGY, T0)
    ranks = {c["pathway"]: c["rank"] for r in view["regions"] for c in r["cdns"]}
    assert ranks == {"us-east.cdn-b": 1, "eu-west.cdn-a": 2, "eu-west.cdn-b": 3, "us-east.cdn-a": 4}


def test_a_silent_region_is_down_and_the_failover_moves_serving() -> None:
    state = folded(
        beat("eu-west", T0),
        beat("us-east", T0),
        steering(("eu-west.cdn-a", "us-east.cdn-a"), 1),
        beat("us-east", T0 + 4_000),
    )
    assert regions(state, T0 + 4_000)["eu-west"] == "down"
    state = fold(state, steering(("us-east.cdn-a", "eu-west.cdn-a"), 2))
    assert regions(state, T0 + 4_000) == {"eu-west": "down", "us-east": "serving"}
    pathways = snapshot(state, TOPOLOGY, T0 + 4_000)["regions"][0]["cdns"]
    assert {p["state"] for p in pathways} == {"down"}


def test_a_failing_source_counts_as_dead_and_old_beats_read_late_change_nothing() -> None:
    state = folded(beat("eu-west", T0 + 1_000, status=IngestStatus.FAILING), beat("eu-west", T0))
    assert regions(state, T0 + 1_100)["eu-west"] == "down"


def test_an_older_steering_version_never_replaces_a_newer_one() -> None:
    state = folded(steering(("us-east.cdn-a",), 5), steering(("eu-west.cdn-a",), 4))
    assert snapshot(state, TOPOLOGY, T0)["steering"] == {
        "priority": ["us-east.cdn-a"],
        "version": 5,
    }


def test_a_content_s_own_steering_wins_over_the_one_for_every_content() -> None:
    state = folded(
        beat("eu-west", T0),
        beat("us-east", T0),
        steering(("eu-west.cdn-a",), 1),
        steering(("us-east.cdn-b",), 1, content="match-of-the-day"),
    )
    assert regions(state, T0) == {"eu-west": "standby", "us-east": "serving"}


def test_regions_without_beats_are_judged_by_their_edges_health_checks() -> None:
    state = observe_probe(ConsoleState(), "eu-west.cdn-a", ok=True, at=T0)
    state = observe_probe(state, "us-east.cdn-a", ok=False, at=T0, reason="unreachable")
    assert regions(state, T0 + 100) == {"eu-west": "serving", "us-east": "down"}
    assert regions(state, T0 + 60_000) == {"eu-west": "unknown", "us-east": "unknown"}
    edge = snapshot(state, TOPOLOGY, T0 + 100)["regions"][1]["cdns"][0]
    assert edge["probe"] == {"ok": False, "at": T0, "reason": "unreachable"}


def test_decisions_are_newest_first_de_duplicated_and_bounded() -> None:
    events = [decision(n, T0 + n) for n in range(MAX_DECISIONS + 10)]
    state = folded(*events, decision(3, T0 + 3))
    listed = snapshot(state, TOPOLOGY, T0)["decisions"]
    assert len(listed) == MAX_DECISIONS
    assert [d["decision_id"] for d in listed[:2]] == [
        f"d{MAX_DECISIONS + 9}",
        f"d{MAX_DECISIONS + 8}",
    ]
    assert listed[0]["evidence"] == ["heartbeat-silence-s:eu-west/ANY 2.5 (limit 1.5)"]


def test_revocations_and_rotations_are_listed_with_emergency_epochs_once() -> None:
    revocation = RevocationRequested(
        event_id="r",
        occurred_at=T0,
        region="eu-west",
        revocation_id="rev-1",
        scope=RevocationScope.VIEWER,
        subject="pseudonym",
        reason="console",
        requested_by="admin-api",
        covers_until=T0 + 330_000,
    )
    epoch = KeyEpoch(
        event_id="k",
        occurred_at=T0 + 10,
        region="eu-west",
        epoch_id="epoch-x",
        started_at=T0 + 5,
        period_seconds=10,
        emergency=True,
        wrapped_keys=(),
    )
    period = KeyRotated(
        event_id="p",
        occurred_at=T0 + 20,
        region="eu-west",
        content_id="match-of-the-day",
        period=170_000_000,
        key_id="ab" * 16,
        epoch_id="epoch-x",
        period_start=T0,
        period_end=T0 + 10_000,
    )
    view = snapshot(folded(revocation, epoch, period, epoch), TOPOLOGY, T0 + 30)
    assert [(r["scope"], r["reason"]) for r in view["revocations"]] == [("viewer", "console")]
    assert [r["kind"] for r in view["rotations"]] == ["period", "emergency-epoch"]
    assert view["key_period"] == {
        "period": 170_000_000,
        "epoch_id": "epoch-x",
        "ends_at": T0 + 10_000,
    }


def test_qoe_windows_of_several_contents_merge_weighted_by_sessions() -> None:
    state = folded(
        aggregate("eu-west", "cdn-a", T0, 30, 0.0),
        aggregate("eu-west", "cdn-a", T0, 10, 0.2, content="*"),
        aggregate("eu-west", "cdn-a", T0 + 5_000, 20, 0.1),
    )
    series = snapshot(state, TOPOLOGY, T0)["qoe"]["eu-west.cdn-a"]
    assert [p["sessions"] for p in series] == [40, 20]
    assert abs(series[0]["rebuffer_ratio"] - 0.05) < 1e-9


def test_only_accepted_drains_mark_a_region_draining() -> None:
    def command(cid: str, action: OperatorAction) -> OperatorCommand:
        return OperatorCommand(
            event_id=cid, occurred_at=T0, region="eu-west", command_id=cid, action=action,
            target="us-east", operator="ops", reason="test",
        )  # fmt: skip

    def outcome(cid: str, accepted: bool) -> OperatorCommandOutcome:
        return OperatorCommandOutcome(
            event_id=f"o{cid}", occurred_at=T0, region="eu-west", command_id=cid,
            accepted=accepted, reason="applied" if accepted else "last-healthy-region",
            detail="", decision_ids=(),
        )  # fmt: skip

    base = (beat("eu-west", T0), beat("us-east", T0), steering(("eu-west.cdn-a",), 1))
    refused = folded(*base, command("c1", OperatorAction.DRAIN), outcome("c1", False))
    assert regions(refused, T0)["us-east"] == "standby"
    drained = fold(fold(refused, command("c2", OperatorAction.DRAIN)), outcome("c2", True))
    assert regions(drained, T0)["us-east"] == "draining"
    restored = fold(fold(drained, command("c3", OperatorAction.RESTORE)), outcome("c3", True))
    assert regions(restored, T0)["us-east"] == "standby"
