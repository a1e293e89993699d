"""Two simulated regions as real processes, and a fleet of simulated players on them.

A stand-in steering server with a fixed priority (eu-west first, then us-east) plays the
part of the control plane, which is tested on its own: here the players must survive by
themselves — one packager lost (no stall), one CDN edge lost (the other CDN at once), a
whole region lost (the other region on the failed requests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from liveward.settings import MediaSettings, ServiceSettings, Settings
from liveward.topology import pathways
from services.media.layout import DEFAULT_CONTENT
from services.media.region import RegionProcesses, running_regions, start_all
from services.players.fleet import FleetConfig, FleetResult, entry_urls, run_fleet
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.events import IngestHealth, IngestRole, IngestStatus
from streams.topics import apply_topics

PLAYERS = 50
PLAY_S = 10.0
CHAOS_AT_S = 3.0


@pytest.fixture(scope="module")
def media_settings(kafka_cluster: Settings, port_offset: int) -> Settings:
    apply_topics(kafka_cluster)
    return kafka_cluster.model_copy(
        update={
            "regions": ("eu-west", "us-east"),
            "media": MediaSettings(
                origin_port_base=18100 + port_offset, edge_port_base=18200 + port_offset
            ),
            "services": ServiceSettings(steering_port=18185 + port_offset),
        }
    )


@pytest.fixture(scope="module")
def regions(media_settings: Settings) -> Iterator[list[RegionProcesses]]:
    # The lifetime bounds every process even if this test run dies without cleaning up.
    with running_regions(media_settings, lifetime_s=900) as started:
        yield started


@pytest.fixture
def intact(regions: list[RegionProcesses]) -> list[RegionProcesses]:
    """Every region whole again (an earlier test may have killed some of it)."""
    start_all(regions)
    return regions


class FixedSteering:
    """Answers every steering request with one fixed priority: every pathway, in order."""

    def __init__(self, settings: Settings) -> None:
        self.priority = [p.id for p in pathways(settings)]
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                path = head.split(b" ")[1].split(b"?")[0].decode()
                body = orjson.dumps(
                    {"VERSION": 1, "TTL": 2, "RELOAD-URI": path, "PATHWAY-PRIORITY": self.priority}
                )
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def play(
    settings: Settings, chaos: Callable[[], object] | None = None, *, play_s: float = PLAY_S
) -> tuple[FleetResult, float]:
    """PLAYERS players for play_s seconds; chaos() runs CHAOS_AT_S seconds in. Returns the
    result and the epoch second chaos happened."""

    async def scenario() -> tuple[FleetResult, float]:
        steering = FixedSteering(settings)
        server = await asyncio.start_server(
            steering.handle, settings.services.host, settings.services.steering_port
        )
        config = FleetConfig(
            entry_urls=entry_urls(settings, DEFAULT_CONTENT),
            content_id=DEFAULT_CONTENT,
            count=PLAYERS,
            duration_s=play_s,
        )
        chaos_at = 0.0

        async def later() -> None:
            nonlocal chaos_at
            await asyncio.sleep(CHAOS_AT_S)
            chaos_at = time.time()
            if chaos is not None:
                await asyncio.to_thread(chaos)

        async with server:
            result, _ = await asyncio.gather(run_fleet(config), later())
        assert steering.requests > 0
        return result, chaos_at

    return asyncio.run(scenario())


def show(name: str, result: FleetResult, extra: str = "") -> None:
    summary = result.summary()
    print(
        f"\n{name}: availability {summary.availability:.4f}, stalled players "
        f"{summary.stalled_players}/{summary.players}, "
        f"longest stall {summary.longest_stall_s:.3f} s, switches {summary.switches_by_reason}, "
        f"segments {summary.segments_by_pathway}{extra}"
    )


def test_a_fleet_plays_without_stalling(
    media_settings: Settings, intact: list[RegionProcesses]
) -> None:
    result, _ = play(media_settings)
    show("steady", result)
    summary = result.summary()
    assert summary.started == PLAYERS
    assert summary.stalled_players == 0
    assert summary.availability == 1.0
    assert set(summary.segments_by_pathway) == {"eu-west.cdn-a"}


def test_losing_one_packager_of_the_pair_goes_unnoticed(
    media_settings: Settings, intact: list[RegionProcesses]
) -> None:
    eu_west = intact[0]
    result, killed_at = play(media_settings, lambda: eu_west.kill_packager("a"))
    show("packager lost", result)
    summary = result.summary()
    assert summary.started == PLAYERS
    assert summary.stalled_players == 0
    assert summary.switches_by_reason == {}
    # The surviving packager kept the window moving: segments after the kill, same pathway.
    assert all(max(r.segments.times) > killed_at + 4 for r in result.reports)
    assert set(summary.segments_by_pathway) == {"eu-west.cdn-a"}


def test_losing_a_cdn_edge_moves_players_to_the_other_cdn(
    media_settings: Settings, intact: list[RegionProcesses]
) -> None:
    eu_west = intact[0]
    result, killed_at = play(media_settings, lambda: eu_west.kill_edge("cdn-a"))
    moved = result.time_to_region("eu-west", 1.0, killed_at)
    show("edge lost", result, f", all on eu-west.cdn-b after {moved} s")
    summary = result.summary()
    assert summary.started == PLAYERS
    assert summary.longest_stall_s < 1.0
    for report in result.reports:
        after = [
            p
            for p, at in zip(report.segments.pathways, report.segments.times, strict=True)
            if at > killed_at + 0.5
        ]
        assert after
        assert set(after) == {"eu-west.cdn-b"}


def health_since(settings: Settings, since: float, group: str) -> list[IngestHealth]:
    """Every heartbeat on ingest.health stamped at or after since (epoch seconds): every
    partition read from the beginning up to its end."""
    consumer = Consumer(consumer_config(settings, group, **{"enable.partition.eof": True}))
    partitions = (
        consumer.list_topics("ingest.health", timeout=10).topics["ingest.health"].partitions
    )
    consumer.assign([TopicPartition("ingest.health", p, OFFSET_BEGINNING) for p in partitions])
    codec = default_codec()
    beats: list[IngestHealth] = []
    open_partitions = set(partitions)
    deadline = time.monotonic() + 30
    try:
        while open_partitions and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(message.partition())
                    continue
                beat = codec.decode_as(message.value() or b"", IngestHealth)
                if beat.occurred_at >= since * 1000:
                    beats.append(beat)
    finally:
        consumer.close()
    return beats


def test_losing_the_ingest_starves_the_region_and_players_leave_its_stale_playlist(
    media_settings: Settings, intact: list[RegionProcesses], unique_name: str
) -> None:
    eu_west = intact[0]
    # A stale playlist shows only after two target durations without a new segment.
    result, killed_at = play(media_settings, eu_west.member("ingest").process.kill, play_s=15.0)
    moved = result.time_to_region("us-east", 0.99, killed_at)
    show("ingest lost", result, f", 99% fetching from us-east after {moved} s")
    summary = result.summary()
    assert summary.started == PLAYERS
    assert set(summary.switches_by_reason) == {"stale-playlist"}
    assert moved is not None
    assert moved < 10.0
    assert summary.longest_stall_s < 2.0
    # The region said so in its heartbeats: packagers and origin fail, us-east stays OK.
    beats = health_since(media_settings, killed_at + 5, unique_name)
    latest = {(b.source_id, b.content_id): b for b in sorted(beats, key=lambda b: b.occurred_at)}
    status = {source: b.status for (source, _), b in latest.items()}
    assert status["eu-west/packager-a"] is IngestStatus.FAILING
    assert status["eu-west/packager-b"] is IngestStatus.FAILING
    assert status["eu-west/origin"] is IngestStatus.FAILING
    assert "eu-west/ingest" not in status
    assert {
        status[f"us-east/{role}"] for role in ("ingest", "packager-a", "packager-b", "origin")
    } == {IngestStatus.OK}
    assert {b.role for b in beats} == {IngestRole.INGEST, IngestRole.PACKAGER, IngestRole.ORIGIN}


def test_losing_a_region_moves_players_to_the_other_region(
    media_settings: Settings, intact: list[RegionProcesses]
) -> None:
    eu_west = intact[0]
    result, killed_at = play(media_settings, eu_west.kill)
    moved = result.time_to_region("us-east", 0.99, killed_at)
    show("region lost", result, f", 99% fetching from us-east after {moved} s")
    summary = result.summary()
    assert summary.started == PLAYERS
    assert moved is not None
    assert moved < 10.0
    assert summary.longest_stall_s < 2.0
    assert summary.availability > 0.99
