"""The control plane's pure fold: detection, hysteresis, failback, drains, restarts."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.control import (
    DEFAULT_CONTENT,
    ControlContext,
    ControlInput,
    ControlOutputs,
    ControlState,
    FailoverRules,
    durable,
    fold_log,
    ingest,
    restore,
    tick,
)
from streams.events import (
    FailoverDecision,
    IngestHealth,
    IngestRole,
    IngestStatus,
    OperatorAction,
    OperatorCommand,
    OperatorCommandOutcome,
    QoEAggregate,
    SteeringState,
)

EU_A, EU_B, US_A, US_B = "eu-west.cdn-a", "eu-west.cdn-b", "us-east.cdn-a", "us-east.cdn-b"
ORDER = (EU_A, EU_B, US_A, US_B)
US_FIRST = (US_A, US_B, EU_A, EU_B)
T0 = 1_700_000_000_000
RULES = FailoverRules()


def context(rules: FailoverRules = RULES) -> ControlContext:
    ids = itertools.count()
    return ControlContext(rules, ORDER, "eu-west", new_id=lambda: f"id-{next(ids)}")


def beat(
    source: str,
    region: str,
    at: int,
    *,
    content: str = "ch1",
    role: IngestRole = IngestRole.PACKAGER,
    status: IngestStatus = IngestStatus.OK,
    segment_at: int | None = None,
) -> IngestHealth:
    return IngestHealth(
        event_id=f"b-{source}-{at}",
        occurred_at=at,
        region=region,
        source_id=source,
        role=role,
        content_id=content,
        beat_seq=at // 1000,
        last_segment_seq=at // 2000,
        last_segment_at=at if segment_at is None else segment_at,
        status=status,
    )


def aggregate(
    region: str, cdn: str, at: int, *, errors: float = 0.0, content: str = "ch1", sessions: int = 50
) -> QoEAggregate:
    return QoEAggregate(
        event_id=f"q-{region}-{cdn}-{at}",
        occurred_at=at,
        region=region,
        window_start=at - 5000,
        window_end=at,
        serving_region=region,
        cdn=cdn,
        content_id=content,
        sessions=sessions,
        viewers=sessions,
        samples=sessions * 5,
        rebuffer_ratio=0.0,
        exits_before_start=0,
        error_rate=errors,
        bitrate_p50_kbps=3000.0,
        bitrate_p95_kbps=5000.0,
    )


def command(action: OperatorAction, target: str, at: int) -> OperatorCommand:
    return OperatorCommand(
        event_id=f"c-{at}",
        occurred_at=at,
        region="eu-west",
        command_id=f"cmd-{at}",
        action=action,
        target=target,
        operator="alice",
        reason="maintenance",
    )


@dataclass
class Plane:
    """Drives the fold like the agent does: inputs as they arrive, and a tick every 250 ms."""

    ctx: ControlContext = field(default_factory=context)
    state: ControlState = field(default_factory=ControlState)
    decisions: list[FailoverDecision] = field(default_factory=list)
    steering: list[SteeringState] = field(default_factory=list)
    outcomes: list[OperatorCommandOutcome] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    now: int = T0

    def feed(self, event: ControlInput, at: int | None = None) -> None:
        self.now = self.now if at is None else at
        self.state, out = ingest(self.state, event, arrived_at=self.now, ctx=self.ctx)
        self._keep(out)

    def tick(self, at: int) -> None:
        self.now = at
        self.state, out = tick(self.state, now=at, ctx=self.ctx)
        self._keep(out)

    def _keep(self, out: ControlOutputs) -> None:
        self.decisions += out.decisions
        self.steering += out.steering
        self.retired += out.retired
        if out.outcome is not None:
            self.outcomes.append(out.outcome)

    def run(self, until: int, sources: dict[str, tuple[str, str]], **beat_args: object) -> None:
        """Beat every second from `sources` (id -> (region, content)), tick every 250 ms."""
        for at in range(self.now + 250, until + 1, 250):
            if at % 1000 == 0:
                for source, (region, content) in sources.items():
                    self.feed(beat(source, region, at, content=content, **beat_args), at)  # type: ignore[arg-type]
            self.tick(at)

    def priority(self, content: str = DEFAULT_CONTENT) -> tuple[str, ...]:
        entry = self.state.steering.get(content) or self.state.steering.get(DEFAULT_CONTENT)
        return entry.priority if entry else ORDER


BOTH = {"pk-eu": ("eu-west", "ch1"), "pk-us": ("us-east", "ch1")}
US_ONLY = {"pk-us": ("us-east", "ch1")}


def test_a_silent_region_is_failed_over_after_the_confirmation_window() -> None:
    plane = Plane()
    plane.run(T0 + 10_000, BOTH)
    assert plane.decisions == [] and plane.priority() == ORDER
    # eu-west's last beat was at T0+10s; 2.5 s of silence is the whole window.
    plane.run(T0 + 12_250, US_ONLY)
    assert plane.decisions == []
    plane.run(T0 + 12_500, US_ONLY)
    assert {d.content_id for d in plane.decisions} == {DEFAULT_CONTENT, "ch1"}
    decision = plane.decisions[0]
    assert (decision.from_pathway, decision.to_pathway) == (EU_A, US_A)
    assert decision.reason == "heartbeats-missed" and decision.decided_at == T0 + 12_500
    assert any(e.metric.startswith("heartbeat-silence-s:eu-west") for e in decision.evidence)
    assert plane.priority() == US_FIRST and plane.priority("ch1") == US_FIRST
    assert plane.steering[-1].decision_id == plane.decisions[-1].decision_id


def test_failback_waits_for_the_longer_window_and_backs_off_when_it_fails_again() -> None:
    plane = Plane()
    plane.run(T0 + 10_000, BOTH)
    plane.run(T0 + 15_000, US_ONLY)
    plane.decisions.clear()
    plane.run(T0 + 24_750, BOTH)  # beats again from T0+16s: good for 8.75 s, not yet 10
    assert plane.decisions == [] and plane.priority() == US_FIRST
    plane.run(T0 + 26_000, BOTH)
    assert [d.reason for d in plane.decisions] == ["recovered", "recovered"]
    assert (plane.decisions[0].from_pathway, plane.decisions[0].to_pathway) == (US_A, EU_A)
    assert plane.priority() == ORDER
    # A second failure in a row: failback now takes twice as long.
    plane.decisions.clear()
    plane.run(T0 + 30_000, US_ONLY)
    plane.run(T0 + 48_000, BOTH)
    assert [d.reason for d in plane.decisions] == ["heartbeats-missed"] * 2
    plane.run(T0 + 52_000, BOTH)
    assert plane.decisions[-1].reason == "recovered"
    assert plane.decisions[-1].decided_at == T0 + 51_000  # beats from T0+31s, 20 s window


def test_losing_one_packager_of_a_hot_hot_pair_moves_nobody() -> None:
    pair = {**BOTH, "pk-eu-2": ("eu-west", "ch1")}
    plane = Plane()
    plane.run(T0 + 5_000, pair)
    plane.run(T0 + 90_000, {k: v for k, v in pair.items() if k != "pk-eu"})
    assert plane.decisions == []
    assert "pk-eu" not in plane.state.sources  # forgotten once its partner carried on


def test_beats_with_clocks_far_off_are_counted_and_ignored() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    for at in range(T0 + 6_000, T0 + 10_000, 1000):
        plane.feed(beat("pk-us", "us-east", at), at)
        # A region whose clock runs 30 s ahead must not be kept alive by it.
        plane.feed(beat("pk-eu", "eu-west", at + 30_000), at)
        plane.tick(at)
    assert plane.state.counters["clock-ahead"] == 4
    assert plane.priority() == US_FIRST
    plane.feed(beat("pk-eu", "eu-west", T0 - 30_000), T0 + 10_000)
    assert plane.state.counters["clock-behind"] == 1


def test_a_worker_catching_up_on_a_backlog_fails_nothing_over() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    # The worker was away; now eu-west's partition is read up to date while us-east's
    # beats still come out of the backlog, 6 s late, for a while.
    for at in range(T0 + 6_000, T0 + 20_000, 1000):
        plane.feed(beat("pk-eu", "eu-west", at), at)
        plane.feed(beat("pk-us", "us-east", at - 6_000), at)
        plane.tick(at + 500)
    for at in range(T0 + 20_000, T0 + 25_000, 1000):
        plane.feed(beat("pk-eu", "eu-west", at), at)
        plane.feed(beat("pk-us", "us-east", at), at)
        plane.tick(at + 500)
    assert plane.decisions == []
    assert plane.state.counters["clock-behind"] == 14


def test_beats_from_unknown_regions_and_out_of_order_only_count() -> None:
    plane = Plane()
    plane.feed(beat("pk-x", "mars", T0), T0)
    plane.feed(beat("pk-eu", "eu-west", T0), T0)
    plane.feed(beat("pk-eu", "eu-west", T0 - 500), T0)
    assert plane.state.counters == {"unknown-region": 1, "out-of-order": 1}
    assert set(plane.state.sources) == {"pk-eu"}


def test_a_packager_that_beats_but_makes_no_segments_fails_its_content_only() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    for at in range(T0 + 6_000, T0 + 16_000, 1000):
        plane.feed(beat("pk-us", "us-east", at), at)
        # eu-west beats on, but its newest segment stays the one of T0+5s.
        plane.feed(beat("pk-eu", "eu-west", at, segment_at=T0 + 5_000), at)
        plane.tick(at)
    [decision] = plane.decisions
    assert (decision.content_id, decision.reason) == ("ch1", "segment-lag")
    assert decision.decided_at == T0 + 12_000  # 6 s of lag, then the 1-s confirmation
    assert plane.priority("ch1") == US_FIRST
    assert plane.priority(DEFAULT_CONTENT) == ORDER


def test_a_source_reporting_failing_counts_as_dead() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.run(T0 + 8_000, US_ONLY)  # keep the watermark moving
    plane.state = ControlState()
    plane.decisions.clear()
    plane.run(T0 + 9_000, BOTH)
    for at in range(T0 + 10_000, T0 + 13_000, 1000):
        plane.feed(beat("pk-us", "us-east", at), at)
        plane.feed(beat("pk-eu", "eu-west", at, status=IngestStatus.FAILING), at)
        plane.tick(at)
    assert [d.reason for d in plane.decisions][:1] == ["source-failing"]


def test_two_bad_qoe_windows_fail_over_one_pathway_of_one_content() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 5_000, errors=0.3))
    plane.run(T0 + 9_000, BOTH)
    assert plane.decisions == []  # one bad window is a blip
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 10_000, errors=0.3), T0 + 9_000)
    plane.tick(T0 + 9_250)
    [decision] = plane.decisions
    assert (decision.content_id, decision.reason) == ("ch1", "error-rate")
    assert (decision.from_pathway, decision.to_pathway) == (EU_A, EU_B)
    assert plane.priority("ch1") == (EU_B, US_A, US_B, EU_A)
    assert plane.priority(DEFAULT_CONTENT) == ORDER
    # Every content with evidence on eu-west.cdn-a is bad: the '*' default follows.
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 10_000, errors=0.3, content="ch2"), T0 + 9_500)
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 11_000, errors=0.3, content="ch2"), T0 + 9_750)
    plane.run(T0 + 10_750, BOTH)
    assert plane.priority(DEFAULT_CONTENT) == ORDER  # bad since ch2's first bad window
    plane.run(T0 + 11_000, BOTH)
    assert plane.priority(DEFAULT_CONTENT) == (EU_B, US_A, US_B, EU_A)


def test_thin_late_and_good_aggregates_do_not_fail_over() -> None:
    plane = Plane()
    plane.run(T0 + 2_000, BOTH)
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 2_000, errors=0.5, sessions=2))
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 2_000, errors=0.5))
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 1_000, errors=0.5))
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 3_000, errors=0.0))
    plane.feed(aggregate("eu-west", "cdn-a", T0 + 4_000, errors=0.5))
    plane.run(T0 + 6_000, BOTH)
    assert plane.decisions == []
    assert plane.state.counters["thin-aggregate"] == 1
    assert plane.state.counters["late-aggregate"] == 1


def test_the_last_region_up_is_never_failed_over() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.run(T0 + 10_000, US_ONLY)
    plane.decisions.clear()
    # us-east dies too while another stream keeps time moving: for ch1, nowhere is left to
    # go, so us-east stays up (held), and eu-west stays down until it beats again.
    plane.run(T0 + 30_000, {"pk-eu-ch2": ("eu-west", "ch2")})
    assert plane.state.health_of(US_A, "ch1").up
    assert not plane.state.health_of(EU_A, "ch1").up
    assert plane.priority("ch1") == US_FIRST


def test_an_ended_stream_is_forgotten_and_its_steering_entry_deleted() -> None:
    plane = Plane()
    plane.run(T0 + 15_000, {**BOTH, "pk-us-2": ("us-east", "ch2")})
    plane.run(T0 + 20_000, {**BOTH})  # ch2 ended; it never had a source in eu-west
    assert plane.priority("ch2") == US_FIRST
    plane.run(T0 + 75_000, BOTH)
    assert plane.retired == []  # last heard at T0+15s: a minute of silence is the end
    plane.run(T0 + 75_250, BOTH)
    assert plane.retired == ["ch2"]
    assert "ch2" not in plane.state.contents and "ch2" not in plane.state.steering
    # With ch2 gone, nothing stops an operator draining us-east.
    plane.feed(command(OperatorAction.DRAIN, "us-east", T0 + 75_500))
    assert plane.outcomes[-1].reason == "drained"


def test_decisions_freeze_when_every_input_stops() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    for at in range(T0 + 5_250, T0 + 120_000, 250):
        plane.tick(at)
    assert plane.decisions == []


def test_a_content_missing_from_a_region_fails_over_after_the_start_up_grace() -> None:
    plane = Plane()
    plane.run(T0 + 20_000, {**BOTH, "pk-us-2": ("us-east", "ch2")})
    ch2 = [d for d in plane.decisions if d.content_id == "ch2"]
    assert [d.reason for d in ch2] == ["no-source"]
    assert ch2[0].decided_at == T0 + 12_000  # first heard at T0+1s, grace 10 s, confirm 1 s
    assert plane.priority("ch2") == US_FIRST and plane.priority("ch1") == ORDER


def test_drain_and_restore_move_players_at_once() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.feed(command(OperatorAction.DRAIN, "eu-west", T0 + 5_100))
    assert plane.outcomes[-1].accepted and plane.outcomes[-1].reason == "drained"
    assert plane.priority() == US_FIRST and plane.priority("ch1") == US_FIRST
    assert {(d.reason, d.operator) for d in plane.decisions} == {("operator-drain", True)}
    assert set(plane.outcomes[-1].decision_ids) == {d.decision_id for d in plane.decisions}
    plane.feed(command(OperatorAction.DRAIN, "eu-west", T0 + 5_200))
    assert plane.outcomes[-1].reason == "already-drained"
    plane.feed(command(OperatorAction.DRAIN, "us-east", T0 + 5_300))
    assert not plane.outcomes[-1].accepted
    assert plane.outcomes[-1].reason == "last-healthy-region"
    assert plane.priority() == US_FIRST
    plane.feed(command(OperatorAction.RESTORE, "eu-west", T0 + 5_400))
    assert plane.outcomes[-1].reason == "restored" and plane.priority() == ORDER
    plane.feed(command(OperatorAction.RESTORE, "eu-west", T0 + 5_500))
    assert plane.outcomes[-1].reason == "not-drained"
    plane.feed(command(OperatorAction.DRAIN, "mars", T0 + 5_600))
    assert plane.outcomes[-1].reason == "unknown-target"


def test_a_drained_pathway_and_a_region_drain_over_it() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.feed(command(OperatorAction.DRAIN, EU_A, T0 + 5_100))
    assert plane.priority() == (EU_B, US_A, US_B, EU_A)
    plane.feed(command(OperatorAction.DRAIN, "eu-west", T0 + 5_200))
    plane.feed(command(OperatorAction.RESTORE, EU_A, T0 + 5_300))
    assert plane.outcomes[-1].reason == "region-drained"
    plane.feed(command(OperatorAction.RESTORE, "eu-west", T0 + 5_400))
    assert plane.priority() == ORDER  # the region's restore lifts its pathway drains too


def test_draining_the_only_region_left_up_is_refused() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.run(T0 + 10_000, US_ONLY)
    plane.feed(command(OperatorAction.DRAIN, "us-east", T0 + 10_100))
    refused = plane.outcomes[-1]
    assert (refused.accepted, refused.reason) == (False, "last-healthy-region")
    assert "us-east.cdn-a" in refused.detail


def test_a_region_that_fails_while_drained_still_serves_ahead_of_dead_ones() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.feed(command(OperatorAction.DRAIN, "eu-west", T0 + 5_100))
    plane.run(T0 + 10_000, {"pk-eu": ("eu-west", "ch1")})
    assert plane.priority() == ORDER  # us-east died: the drained region is all that is left


def test_a_restart_keeps_decisions_and_misses_a_region_that_stays_silent() -> None:
    plane = Plane()
    plane.run(T0 + 5_000, BOTH)
    plane.run(T0 + 10_000, US_ONLY)
    saved = durable(plane.state)
    restarted = Plane(state=restore(saved, now=T0 + 60_000), now=T0 + 60_000)
    assert restarted.priority() == US_FIRST
    assert durable(restarted.state) == saved
    restarted.run(T0 + 69_000, BOTH)  # eu-west is back: still ten seconds to wait
    assert restarted.priority() == US_FIRST
    restarted.run(T0 + 72_000, BOTH)
    assert restarted.priority() == ORDER
    # A region known before the restart that never beats again is missed as usual.
    again = Plane(state=restore(saved, now=T0 + 60_000), now=T0 + 60_000)
    again.run(T0 + 70_000, {"pk-eu": ("eu-west", "ch1")})
    assert again.priority() == US_FIRST  # us-east is silent, but held: eu-west is not back
    again.run(T0 + 70_500, {"pk-eu": ("eu-west", "ch1")})
    assert again.priority() == ORDER
    assert not again.state.health_of(US_A, DEFAULT_CONTENT).up


def test_replaying_the_recorded_inputs_reaches_the_same_state_and_decisions() -> None:
    recorded: list[tuple[int, ControlInput]] = []
    plane = Plane()

    def feed(event: ControlInput, at: int) -> None:
        recorded.append((at, event))
        plane.feed(event, at)

    for at in range(T0 + 1_000, T0 + 60_000, 1000):
        for source, (region, content) in BOTH.items():
            if region == "us-east" or not T0 + 10_000 < at < T0 + 20_000:
                feed(beat(source, region, at + 37, content=content), at + 37)
        # The live ticks run at another phase than the replay's.
        plane.tick(at + 90)
        plane.tick(at + 340)
        if at == T0 + 32_000:
            feed(command(OperatorAction.DRAIN, "eu-west", at + 500), at + 500)
        if at == T0 + 40_000:
            feed(command(OperatorAction.RESTORE, "eu-west", at + 500), at + 500)
        plane.tick(at + 590)
        plane.tick(at + 840)
    replayed, outputs = fold_log(recorded, until=T0 + 60_000, ctx=context())

    def gist(decisions: Iterable[FailoverDecision]) -> list[tuple[str, str, str, str]]:
        return [(d.content_id, d.from_pathway, d.to_pathway, d.reason) for d in decisions]

    assert gist(d for out in outputs for d in out.decisions) == gist(plane.decisions)
    assert len(plane.decisions) == 8  # down, up, drain, restore; for '*' and ch1
    assert {c: s.priority for c, s in replayed.steering.items()} == {
        c: s.priority for c, s in plane.state.steering.items()
    }
    assert replayed.drains == plane.state.drains


# Property: under any flood of contradictory inputs, no pathway flaps faster than the
# windows allow, the priority is always a permutation of every pathway, and at least one
# pathway stays up for every content.

QUICK = FailoverRules(recover_s=4.0, recover_max_s=8.0, failures_reset_s=20.0)

inputs = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1500),  # ms since the previous input
        st.sampled_from(["beat", "beat", "failing", "skewed", "qoe-bad", "qoe-good", "tick"]),
        st.sampled_from(["eu-west", "us-east"]),
        st.sampled_from(["cdn-a", "cdn-b"]),
        st.sampled_from(["ch1", "ch2", "*"]),
    ),
    max_size=250,
)


@settings(max_examples=150, deadline=None)
@given(inputs)
def test_hysteresis_holds_under_any_flood_of_contradictory_health(
    flood: list[tuple[int, str, str, str, str]],
) -> None:
    plane = Plane(ctx=context(QUICK))
    at = T0
    window_end = T0
    changes: dict[tuple[str, str], list[tuple[int, bool]]] = {}
    for gap, kind, region, cdn, content in flood:
        at += gap
        window_end += 1000
        if kind in ("beat", "failing", "skewed"):
            status = IngestStatus.FAILING if kind == "failing" else IngestStatus.OK
            stamp = at + 60_000 if kind == "skewed" else at
            plane.feed(beat(f"pk-{region}-{content}", region, stamp, content=content,
                            status=status), at)  # fmt: skip
        elif kind.startswith("qoe"):
            errors = 0.5 if kind == "qoe-bad" else 0.0
            plane.feed(aggregate(region, cdn, window_end, errors=errors, content=content), at)
        else:
            plane.tick(at)
        for content_id in (DEFAULT_CONTENT, *plane.state.contents):
            ups = [plane.state.health_of(p, content_id).up for p in ORDER]
            assert any(ups)
            for pathway, up in zip(ORDER, ups, strict=True):
                history = changes.setdefault((pathway, content_id), [(T0, True)])
                if history[-1][1] != up:
                    history.append((plane.state.evaluated_at, up))
        assert sorted(plane.priority()) == sorted(ORDER)
    for history in changes.values():
        for (started, was_up), (ended, _) in itertools.pairwise(history[1:]):
            held = ended - started
            # Down for at least the failback window; up again for at least the confirmation.
            assert held >= (QUICK.recover_s * 1000 if not was_up else QUICK.confirm_s * 1000)
