"""The region-loss drill: a live event on two regions loses a packager, a CDN edge, a region.

Against the live system: media processes per region, the stream processors (control
plane), the steering service, and a fleet of simulated players following steering. Three
phases, each with its own fleet run so their figures stay apart:

1. one packager of the serving region's hot-hot pair is killed — no stall expected;
2. one CDN edge of the serving region is killed — players move to the other CDN;
3. every process of the serving region is killed — the control plane fails over and
   players move to the surviving region.

For the region loss it reports the time to detection (when the control plane judged the
region bad, from the evidence of its decision: last beat + the silence threshold), the
time to decision, the time until 99% of players fetch from the surviving region, each
player's stall time, and availability (player-seconds served / player-seconds wanted).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer

from liveward.settings import Settings
from services.media.layout import DEFAULT_CONTENT
from services.media.region import RegionProcesses, start_all
from services.players.fleet import FleetConfig, FleetResult, entry_urls, run_fleet_blocking
from services.players.summary import FleetSummary
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.events import FailoverDecision


@dataclass(frozen=True, slots=True)
class PhaseReport:
    """One failure, and what the players saw of it."""

    failure: str
    summary: FleetSummary
    moved_99_s: float | None  # failure → 99% of players fetch from the expected place
    stalls_s: tuple[float, ...]  # each player's total stall time


@dataclass(frozen=True, slots=True)
class RegionLossReport:
    packager: PhaseReport
    cdn: PhaseReport
    region: PhaseReport
    detection_s: float | None
    decision_s: float | None
    decision_reason: str

    def passed(self, bound_s: float) -> bool:
        moved = self.region.moved_99_s
        return (
            moved is not None
            and moved < bound_s
            and self.packager.summary.stalled_players == 0
            and self.decision_s is not None
        )


class _Decisions:
    """Follows control.failover from now on, keeping decisions that move traffic away."""

    def __init__(self, settings: Settings) -> None:
        group = f"drill-region-{uuid.uuid4().hex}"
        self._consumer = Consumer(
            consumer_config(settings, group, **{"auto.offset.reset": "latest"})
        )
        self._consumer.subscribe(["control.failover"])
        self.seen: list[FailoverDecision] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        codec = default_codec()
        while not self._stop.is_set():
            for message in self._consumer.consume(50, timeout=0.1):
                if message.error() is None and message.value():
                    self.seen.append(codec.decode_as(message.value() or b"", FailoverDecision))

    def first_away_from(self, region: str, after_ms: int) -> FailoverDecision | None:
        for decision in self.seen:
            if decision.from_pathway.startswith(f"{region}.") and decision.decided_at >= after_ms:
                return decision
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._consumer.close()


def _phase(
    settings: Settings,
    *,
    players: int,
    duration_s: float,
    fail_after_s: float,
    fail: Callable[[], object],
) -> tuple[FleetResult, float]:
    """Run a fleet; fail_after_s into it call fail(); return the result and the failure time."""
    config = FleetConfig(
        entry_urls=entry_urls(settings, DEFAULT_CONTENT),
        content_id=DEFAULT_CONTENT,
        count=players,
        duration_s=duration_s,
        ramp_s=1.0,
    )
    failed_at: list[float] = []

    def failure() -> None:
        time.sleep(fail_after_s)
        failed_at.append(time.time())
        fail()

    trigger = threading.Thread(target=failure, daemon=True)
    trigger.start()
    result = run_fleet_blocking(config)
    trigger.join(timeout=5)
    return result, failed_at[0]


def run_region_loss_drill(
    settings: Settings, regions: list[RegionProcesses], *, players: int = 200
) -> RegionLossReport:
    """The three phases against running regions, control plane and steering."""
    serving, surviving = regions[0], regions[1]
    cdn = settings.media.cdns[0]
    decisions = _Decisions(settings)
    try:
        result, failed = _phase(
            settings, players=players, duration_s=14, fail_after_s=6,
            fail=lambda: serving.kill_packager("a"),
        )  # fmt: skip
        packager = PhaseReport(
            f"packager A of {serving.region}",
            result.summary(),
            result.time_to_region(serving.region, 0.99, since=failed),
            tuple(r.stalled_s for r in result.reports),
        )
        start_all(regions)

        result, failed = _phase(
            settings, players=players, duration_s=14, fail_after_s=6,
            fail=lambda: serving.kill_edge(cdn),
        )  # fmt: skip
        cdn_phase = PhaseReport(
            f"CDN edge {serving.region}.{cdn}",
            result.summary(),
            result.time_to_region(serving.region, 0.99, since=failed),
            tuple(r.stalled_s for r in result.reports),
        )
        start_all(regions)
        # Let the control plane see the restored edge healthy for its failback window.
        time.sleep(3)

        result, failed = _phase(
            settings, players=players, duration_s=24, fail_after_s=8, fail=serving.kill
        )
        region = PhaseReport(
            f"every process of {serving.region}",
            result.summary(),
            result.time_to_region(surviving.region, 0.99, since=failed),
            tuple(r.stalled_s for r in result.reports),
        )
        failed_ms = int(failed * 1000)
        decision = decisions.first_away_from(serving.region, failed_ms - 5_000)
    finally:
        decisions.close()
    detection_s = decision_s = None
    reason = ""
    if decision is not None:
        decision_s = (decision.decided_at - failed_ms) / 1000
        reason = decision.reason
        silence = next((e for e in decision.evidence if "silence" in e.metric), None)
        if silence is not None:
            # The moment the silence crossed its threshold: when the region was judged bad.
            detection_s = decision_s - (silence.value - silence.threshold)
    return RegionLossReport(packager, cdn_phase, region, detection_s, decision_s, reason)
