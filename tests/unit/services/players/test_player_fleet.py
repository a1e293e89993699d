"""Players against a stand-in CDN and steering server on loopback, with half-second segments.

The stand-in serves two pathways (eu-west.cdn-a, us-east.cdn-a) whose live windows follow
the wall clock, a steering manifest whose priority the test flips, and a telemetry sink.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

import orjson
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7

from services.media.encryption import KeyRotation, key_period
from services.media.manifest import (
    LiveWindow,
    Variant,
    render_media_playlist,
    render_multivariant_playlist,
)
from services.media.segments import ingest_chunk, last_complete_segment, package_segment
from services.players.fleet import FleetConfig, FleetResult, run_fleet

SEGMENT_S = 0.5
# EXT-X-TARGETDURATION is a whole number of seconds: 1 here.
TARGET_S = 1.0
EU, EU_B, US = "eu-west.cdn-a", "eu-west.cdn-b", "us-east.cdn-a"


@dataclass
class StandIn:
    pathways: list[str] = field(default_factory=lambda: [EU, US])
    priority: list[str] = field(default_factory=lambda: [EU, US])
    failing: set[str] = field(default_factory=set)
    frozen: dict[str, int] = field(default_factory=dict)
    telemetry: list[str] = field(default_factory=list)
    port: int = 0
    # Encrypted segments (AES-128, IV = sequence) under a key per 10-s period, or None.
    keys: dict[int, bytes] | None = None
    key_requests: list[str] = field(default_factory=list)
    # Encrypt under the next period's key: the first block then is no MPEG-TS packet.
    wrong_key: bool = False

    def base(self, pathway: str) -> str:
        return f"http://127.0.0.1:{self.port}/{pathway}"

    def answer(self, target: str, body: bytes) -> tuple[int, bytes]:
        path = target.split("?", 1)[0]
        if path == "/steer":
            manifest = {"VERSION": 1, "TTL": 0.5, "PATHWAY-PRIORITY": self.priority}
            return 200, orjson.dumps(manifest)
        if path == "/telemetry":
            self.telemetry.extend(body.decode().splitlines())
            return 202, b""
        if path.startswith("/v1/keys/") and self.keys is not None:
            self.key_requests.append(path)
            return 200, self.keys.setdefault(int(path.rsplit("/", 1)[1]), os.urandom(16))
        _, pathway, _, content, name = path.split("/")
        if pathway in self.failing:
            return 503, b"down"
        if name == "master.m3u8":
            text = render_multivariant_playlist(
                content,
                [Variant(p, self.base(p)) for p in self.pathways],
                steering_uri=f"http://127.0.0.1:{self.port}/steer",
                default_pathway=EU,
                bandwidth_bps=3_000_000,
            )
            return 200, text.encode()
        if name == "media.m3u8":
            last = self.frozen.get(pathway, last_complete_segment(time.time(), SEGMENT_S))
            window = LiveWindow(last - 5, last, 0)
            rotation = KeyRotation(f"http://127.0.0.1:{self.port}", content, SEGMENT_S, 10)
            text = render_media_playlist(
                window,
                segment_seconds=SEGMENT_S,
                window=6,
                keys=rotation if self.keys is not None else None,
            )
            return 200, text.encode()
        seq = int(name.removeprefix("seg-").removesuffix(".ts"))
        segment = package_segment(ingest_chunk(content, seq))
        if self.keys is None:
            return 200, segment
        period = key_period(seq, SEGMENT_S, 10) + (1 if self.wrong_key else 0)
        return 200, encrypt(self.keys.setdefault(period, os.urandom(16)), seq, segment)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ")[1].decode()
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                status, payload = self.answer(unquote(target), body)
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, len(payload), payload)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def encrypt(key: bytes, seq: int, segment: bytes) -> bytes:
    """AES-128-CBC with PKCS#7 and IV = the media sequence, as ffmpeg's HLS muxer does."""
    padder = PKCS7(128).padder()
    padded = padder.update(segment) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(seq.to_bytes(16, "big"))).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


async def play(
    stand_in: StandIn,
    *,
    players: int,
    duration: float,
    key_token: str | None = None,
    bridge: bool = False,
    at: float = 1.0,
    change=None,
) -> tuple[FleetResult, float]:  # type: ignore[no-untyped-def]
    """Run a fleet against the stand-in; `change(stand_in)` happens `at` seconds in.
    Returns the result and the epoch second of the change."""
    server = await asyncio.start_server(stand_in.handle, "127.0.0.1", 0)
    stand_in.port = server.sockets[0].getsockname()[1]
    config = FleetConfig(
        entry_urls=(
            f"{stand_in.base(EU)}/live/m/master.m3u8",
            f"{stand_in.base(US)}/live/m/master.m3u8",
        ),
        content_id="m",
        count=players,
        duration_s=duration,
        ramp_s=0.2,
        request_timeout_s=1.0,
        steering_retry_s=0.5,
        bridge_url=f"http://127.0.0.1:{stand_in.port}/telemetry" if bridge else None,
        telemetry_flush_s=0.2,
        key_token=key_token,
    )
    changed_at = 0.0

    async def later() -> None:
        nonlocal changed_at
        await asyncio.sleep(at)
        changed_at = time.time()
        if change is not None:
            change(stand_in)

    async with server:
        result, _ = await asyncio.gather(run_fleet(config), later())
    return result, changed_at


def test_players_follow_a_steering_flip_within_its_ttl() -> None:
    result, flipped_at = asyncio.run(
        play(StandIn(), players=20, duration=2.5, change=lambda s: setattr(s, "priority", [US, EU]))
    )
    summary = result.summary()
    assert summary.started == 20
    before = [
        p
        for r in result.reports
        for p, at in zip(r.segments.pathways, r.segments.times, strict=True)
        if at < flipped_at
    ]
    assert set(before) == {EU}
    moved = result.time_to_region("us-east", 1.0, flipped_at)
    assert moved is not None
    assert moved < 0.5 + TARGET_S + 0.5  # one TTL, a reload, and slack for a busy machine
    assert summary.switches_by_reason == {"steering": 20}
    assert all(r.served_s <= r.wanted_s + 1e-9 for r in result.reports)


def test_failed_segment_requests_move_players_to_the_next_pathway_at_once() -> None:
    stand_in = StandIn()
    result, failed_at = asyncio.run(
        play(stand_in, players=20, duration=2.5, bridge=True, change=lambda s: s.failing.add(EU))
    )
    summary = result.summary()
    assert summary.started == 20
    assert summary.switches_by_reason["http-503"] == 20
    moved = result.time_to_region("us-east", 1.0, failed_at)
    assert moved is not None
    assert moved < 0.5
    # The fleet reported CMCD to the bridge: where each segment came from, and the failure.
    assert result.telemetry is not None
    assert result.telemetry.sent == len(stand_in.telemetry) > 0
    assert any(
        "com.liveward-region=us-east" in line and "br=3000" in line for line in stand_in.telemetry
    )
    assert any("com.liveward-error=http-503" in line for line in stand_in.telemetry)
    assert all('sid="' in line and "v=2" in line for line in stand_in.telemetry)
    # Start-up segments say so (the bridge counts them as no steady playback).
    assert sum(1 for line in stand_in.telemetry if ",su," in line) == 20


def test_a_playlist_that_stops_moving_is_abandoned_with_its_sibling_cdn() -> None:
    def freeze(stand_in: StandIn) -> None:
        # The eu-west origin stalls: both of its CDNs serve the same frozen window.
        last = last_complete_segment(time.time(), SEGMENT_S)
        stand_in.frozen.update({EU: last, EU_B: last})

    stand_in = StandIn(pathways=[EU, EU_B, US], priority=[EU, EU_B, US])
    result, frozen_at = asyncio.run(play(stand_in, players=10, duration=4.5, change=freeze))
    summary = result.summary()
    # Each player left eu-west.cdn-a when it went stale and eu-west.cdn-b at first sight.
    assert summary.switches_by_reason.get("stale-playlist") == 20
    assert set(summary.segments_by_pathway) == {EU, US}
    moved = result.time_to_region("us-east", 1.0, frozen_at)
    assert moved is not None
    # Two target durations without a new segment, plus a reload interval: once, not twice.
    assert moved < 2 * TARGET_S + TARGET_S + 0.5


def test_encrypted_segments_decrypt_with_keys_fetched_once_for_the_whole_fleet() -> None:
    stand_in = StandIn(keys={})
    result, _ = asyncio.run(play(stand_in, players=20, duration=2.0, key_token="t"))
    assert result.summary().errors_by_reason == {}, result.summary().errors_by_reason
    assert all(len(report.segments) > 0 for report in result.reports)
    # One request per key period for twenty players (a boundary may add one).
    assert 1 <= len(stand_in.key_requests) <= 2


def test_a_segment_under_the_wrong_key_is_corrupt_and_without_keys_is_checked_by_shape() -> None:
    wrong = StandIn(keys={}, wrong_key=True)
    result, _ = asyncio.run(play(wrong, players=3, duration=1.5, key_token="t"))
    assert result.summary().errors_by_reason.get("corrupt-segment", 0) > 0
    # Without a token players cannot decrypt: whole AES blocks is all they can check.
    shape_only = StandIn(keys={}, wrong_key=True)
    result, _ = asyncio.run(play(shape_only, players=3, duration=1.5))
    assert result.summary().errors_by_reason == {}
    assert sum(len(report.segments) for report in result.reports) > 0
    assert shape_only.key_requests == []
