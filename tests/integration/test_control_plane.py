"""The control plane end to end: heartbeats into the real worker, decisions and steering out,
the steering service answering players, operator drains through the CLI, and replay.

Two simulated regions beat for one stream of this module's own (an ingest point and a
hot-hot packager pair each, every second, from a thread). Timings are printed; the only
bound asserted is the issue's generous one (failure to steering visible under 10 s).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest
import typer
from confluent_kafka import Consumer, TopicPartition
from typer.testing import CliRunner

from infra.processes import ManagedProcess, wait_until
from liveward.commands.control import app as control_app
from liveward.commands.replay import replay
from liveward.settings import ServiceSettings, Settings
from processors.control import FailoverRules
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.events import (
    FailoverDecision,
    IngestHealth,
    IngestRole,
    IngestStatus,
    PackagerManifestState,
)
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer

RULES = FailoverRules()
SOURCES = {
    "eu-west": (("ingest", IngestRole.INGEST), ("pk-a", IngestRole.PACKAGER),
                ("pk-b", IngestRole.PACKAGER)),
    "us-east": (("ingest", IngestRole.INGEST), ("pk-a", IngestRole.PACKAGER),
                ("pk-b", IngestRole.PACKAGER)),
}  # fmt: skip


@dataclass
class Regions:
    """Heartbeats of both regions' sources for one content, every second, until stopped.

    `silence(region)` stops a region's beats; `resume(region)` starts them again. The time
    of each region's last beat is kept for measuring detection.
    """

    settings: Settings
    content_id: str
    silent: set[str] = field(default_factory=set)
    last_beat: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        producer = EventProducer(self.settings)
        seq = 0
        try:
            while not self.stop.is_set():
                at, seq = now_ms(), seq + 1
                beats = [
                    IngestHealth(
                        event_id=new_event_id(),
                        occurred_at=at,
                        region=region,
                        source_id=f"{self.content_id}-{region}-{name}",
                        role=role,
                        content_id=self.content_id,
                        beat_seq=seq,
                        last_segment_seq=seq // 2,
                        last_segment_at=at - 500,
                        status=IngestStatus.OK,
                    )
                    for region, sources in SOURCES.items()
                    if region not in self.silent
                    for name, role in sources
                ]
                producer.send_all("ingest.health", beats)
                for beat in beats:
                    self.last_beat[beat.region] = beat.occurred_at
                self.stop.wait(1.0)
        finally:
            producer.close()

    def silence(self, region: str) -> None:
        self.silent.add(region)

    def resume(self, region: str) -> None:
        self.silent.discard(region)


@dataclass(frozen=True)
class Plane:
    settings: Settings
    regions: Regions
    steering_url: str

    def priority(self, path: str = "") -> list[str]:
        response = httpx.get(f"{self.steering_url}/v1/steering/{self.regions.content_id}{path}")
        assert response.status_code == 200, response.text
        key = "SERVICE-LOCATION-PRIORITY" if path == "/dash" else "PATHWAY-PRIORITY"
        return list(response.json()[key])

    def wait_first(self, region: str, timeout: float) -> float | None:
        """Poll the steering endpoint until `region` leads; the wall time it did, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.priority()[0].startswith(f"{region}."):
                return time.time()
            time.sleep(0.02)
        return None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def plane(worker: Settings, port_offset: int) -> Iterator[Plane]:
    """The worker, both regions beating for this module's stream, and a steering service."""
    port = 18084 + port_offset
    settings = worker.model_copy(update={"services": ServiceSettings(steering_port=port)})
    content_id = f"cp-{uuid.uuid4().hex[:10]}"
    producer = EventProducer(settings)
    producer.send_all(
        "ingest.manifest-state",
        [
            PackagerManifestState(
                event_id=new_event_id(),
                occurred_at=now_ms(),
                region=region,
                content_id=content_id,
                packager_id=f"{content_id}-{region}-pk-a",
                media_sequence=1,
                last_segment_seq=1,
                discontinuity_sequence=0,
                target_duration_ms=2000,
                segment_count=1,
                key_period=0,
            )
            for region in SOURCES
        ],
    )
    producer.close()
    regions = Regions(settings, content_id)
    beating = threading.Thread(target=regions.run, name="beats", daemon=True)
    beating.start()
    steering = ManagedProcess(
        name="steering",
        pid_file=settings.state_dir / "pids" / "test-steering.pid",
        log_file=settings.log_dir / "test-steering.log",
    )
    steering.start(
        [sys.executable, "-m", "liveward.cli", "serve", "steering", "--port", str(port)],
        env={**os.environ, **settings.as_env()},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until(partial(_healthy, url), timeout=90, interval=0.2)
        assert ready, f"steering never became ready:\n{steering.log_tail(40)}"
        # Both regions known to the control plane: a few beats in.
        time.sleep(4.0)
        yield Plane(settings, regions, url)
    finally:
        regions.stop.set()
        beating.join(timeout=10)
        steering.stop()
    assert "Traceback" not in steering.log_tail(200), steering.log_tail(60)


def _decisions_after_now(settings: Settings) -> Consumer:
    consumer = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex}"))
    ends = [
        consumer.get_watermark_offsets(TopicPartition("control.failover", p), timeout=10)[1]
        for p in range(3)
    ]
    consumer.assign([TopicPartition("control.failover", p, end) for p, end in enumerate(ends)])
    return consumer


def _next_decision(consumer: Consumer, content_id: str, timeout: float) -> FailoverDecision:
    codec = default_codec()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in consumer.consume(num_messages=100, timeout=0.1):
            if message.error() is None and message.key() == content_id.encode():
                return codec.decode_as(message.value() or b"", FailoverDecision)
    raise AssertionError(f"no decision for {content_id} within {timeout} s")


def test_a_silent_region_fails_over_then_back_and_steering_follows(plane: Plane) -> None:
    content = plane.regions.content_id
    assert plane.priority()[0].startswith("eu-west.")
    decisions = _decisions_after_now(plane.settings)
    try:
        plane.regions.silence("eu-west")
        visible_at = plane.wait_first("us-east", timeout=15)
        assert visible_at is not None, "players were never steered to us-east"
        decision = _next_decision(decisions, content, timeout=5)
        assert decision.reason == "heartbeats-missed"
        assert decision.from_pathway.startswith("eu-west.")
        assert decision.to_pathway.startswith("us-east.")
        last_beat = plane.regions.last_beat["eu-west"]
        detection_s = (decision.decided_at - last_beat) / 1000
        visible_s = visible_at - decision.decided_at / 1000
        total_s = visible_at - last_beat / 1000
        print(
            f"\nregion loss: last beat -> decision {detection_s:.2f} s "
            f"(rules: {RULES.beat_missed_after_s + RULES.confirm_s:g} s of silence), "
            f"decision -> steering served {visible_s * 1000:.0f} ms, "
            f"failure -> steering served {total_s:.2f} s"
        )
        assert total_s < 10.0
        assert plane.priority("/dash")[0].startswith("us-east.")

        plane.regions.resume("eu-west")
        resumed = time.time()
        back_at = plane.wait_first("eu-west", timeout=40)
        assert back_at is not None, "eu-west never came back"
        recovered = _next_decision(decisions, content, timeout=5)
        assert recovered.reason == "recovered" and recovered.to_pathway.startswith("eu-west.")
        print(
            f"failback: beats again -> steering back {back_at - resumed:.2f} s "
            f"(rules: good for {RULES.recover_s:g} s)"
        )
        assert back_at - resumed >= RULES.recover_s - 1.0
    finally:
        decisions.close()


def _control(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(control_app, list(args), env=settings.as_env())
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_operators_drain_and_restore_and_cannot_drain_the_last_healthy_region(
    plane: Plane,
) -> None:
    settings = plane.settings
    assert plane.priority()[0].startswith("eu-west.")
    started = time.time()
    code, output = _control(settings, "drain", "eu-west", "--reason", "maintenance drill")
    assert code == 0, output
    assert "drained" in output
    moved_at = plane.wait_first("us-east", timeout=5)
    assert moved_at is not None
    print(f"\ndrain: command -> steering served {moved_at - started:.2f} s")

    code, output = _control(settings, "drain", "us-east")
    assert code == 1 and "last-healthy-region" in output, output
    assert plane.priority()[0].startswith("us-east.")

    code, output = _control(settings, "drain", "atlantis")
    assert code == 1 and "unknown-target" in output, output

    code, output = _control(settings, "status")
    print(output)
    assert code == 0, output
    assert plane.regions.content_id in output and "eu-west" in output

    code, output = _control(settings, "restore", "eu-west")
    assert code == 0 and "restored" in output, output
    assert plane.wait_first("eu-west", timeout=5) is not None


def test_steering_refuses_unknown_content_and_malformed_arguments(plane: Plane) -> None:
    base = f"{plane.steering_url}/v1/steering"
    unknown = httpx.get(f"{base}/never-streamed-{uuid.uuid4().hex[:6]}")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown-content")
    bad = httpx.get(f"{base}/{plane.regions.content_id}", params={"_HLS_throughput": "fast"})
    assert (bad.status_code, bad.json()["error"]) == (400, "malformed-throughput")
    bad = httpx.get(f"{base}/{plane.regions.content_id}", params={"_HLS_pathway": "a b"})
    assert (bad.status_code, bad.json()["error"]) == (400, "malformed-pathway")
    metrics = httpx.get(f"{plane.steering_url}/metrics").text
    visible = [line for line in metrics.splitlines() if "steering_visible_seconds_" in line]
    print("\n" + "\n".join(v for v in visible if "_count" in v or "_sum" in v))


def test_replay_rebuilds_the_live_state(plane: Plane) -> None:
    """Runs last in this module: after a failover, a failback, a drain and a restore."""
    result = CliRunner().invoke(_replay_app(), ["--timeout", "60"], env=plane.settings.as_env())
    print("\n" + result.output)
    assert result.exit_code == 0, result.output
    assert plane.regions.content_id in result.output


def _replay_app() -> typer.Typer:
    command = typer.Typer()
    command.command()(replay)
    return command
