"""The real media plane: ffmpeg encoders and packagers in two regions, encrypted live HLS
whose keys come from a running license service and rotate every 10 s.

Per region an ingest encoder (H.264 Main + AAC-LC) and a hot-hot pair of ffmpeg
packagers (HLS AES-128, MPEG-TS) under the key hierarchy's keys, read from an epochs
topic of this module's own; an auth and a license process hand out the keys to a viewer
with a token. Segments fetched from the CDN edges are decrypted with the key the license
service answers (IV = media sequence) and checked with ffprobe.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from infra.processes import pid_alive, wait_until
from liveward.settings import AuthSettings, KeySettings, MediaSettings, ServiceSettings, Settings
from liveward.topology import instance_port
from services.media.encoding import MUX_DELAY_S, pts_offset_s
from services.media.layout import private_key_dir, region_store
from services.media.region import RegionProcesses, running_regions, start_all
from services.players.fleet import FleetConfig, run_fleet_blocking
from streams.codec import AvroEvent, default_codec
from streams.consumer import consumer_config
from streams.events import IngestHealth, IngestStatus, PackagerManifestState
from tests.fixtures.geo import write_geo_databases
from tests.fixtures.services import epoch_on_topics_of_our_own, healthy, serve

ADMIN_KEY, APP_KEY = "media-admin-key", "media-app-key"
# Players on this machine, as the web console's: the local-viewer policy lets them play.
VIEWER_IP = "127.0.0.1"
LOCAL_VIEWER_POLICY = Path(str(files("services.access") / "policies" / "local-viewer.toml"))
CONTENT = "final-live"
PERIOD_S = 10
SEGMENT_S = 2.0
KEY_LINE = re.compile(r'^#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"$')


@dataclass(frozen=True)
class RealMedia:
    settings: Settings
    regions: list[RegionProcesses]
    token: str


def _token(auth_url: str) -> str:
    viewer_id = f"viewer-{uuid.uuid4().hex[:10]}"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    subscriber = {"content_ids": [CONTENT], "device_classes": ["web"], "home_country": "SE"}
    stored = httpx.put(
        f"{auth_url}/v1/subscribers/{viewer_id}", json=subscriber, headers=admin, timeout=10
    )
    assert stored.status_code == 200, stored.text
    body = {"viewer_id": viewer_id, "content_id": CONTENT, "device_id": f"device-{viewer_id}",
            "device_class": "web", "client_ip": VIEWER_IP}  # fmt: skip
    issued = httpx.post(
        f"{auth_url}/v1/tokens",
        json=body,
        headers={"Authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["token"]
    return token


@pytest.fixture(scope="module")
def media(
    worker: Settings, port_offset: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealMedia]:
    """Two regions in ffmpeg mode, an epoch with 10-s key periods, auth and license."""
    files = tmp_path_factory.mktemp("real-media")
    geo = write_geo_databases(files / "geo")
    auth_port, license_port = 18581 + port_offset, 18582 + port_offset
    settings = worker.model_copy(
        update={
            "regions": ("eu-west", "us-east"),
            "services": ServiceSettings(
                auth_port=auth_port,
                license_port=license_port,
                license_grpc_port=18584 + port_offset,
                steering_port=18585 + port_offset,
            ),
            "keys": KeySettings(period_seconds=PERIOD_S),
            "media": MediaSettings(
                source="ffmpeg",
                segment_seconds=SEGMENT_S,
                origin_port_base=18500 + port_offset,
                edge_port_base=18510 + port_offset,
            ),
            "auth": AuthSettings(
                admin_api_key=ADMIN_KEY,  # type: ignore[arg-type]
                app_api_key=APP_KEY,  # type: ignore[arg-type]
                geo_city_db=geo.city,
                geo_asn_db=geo.asn,
                geo_anonymous_db=geo.anonymous,
                policy_file=LOCAL_VIEWER_POLICY,
            ),
        }
    )
    topics, keys = epoch_on_topics_of_our_own(settings, "media", PERIOD_S)
    keys.close()
    # Auth, and a license service per region (key URIs name their own region's).
    processes = [serve(settings, "media-auth", ["auth", "--port", str(auth_port)])]
    urls = [f"http://127.0.0.1:{auth_port}"]
    for index in range(len(settings.regions)):
        port = instance_port(license_port, index)
        grpc_port = instance_port(settings.services.license_grpc_port, index)
        processes.append(
            serve(
                settings,
                f"media-license-{index}",
                [
                    "license",
                    "--port",
                    str(port),
                    "--grpc-port",
                    str(grpc_port),
                    "--epochs-topic",
                    topics.epochs.name,
                ],
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for process, url in zip(processes, urls, strict=True):
            ready = wait_until(partial(healthy, url), timeout=90, interval=0.2)
            assert ready, f"{process.name} never became ready:\n{process.log_tail(40)}"
        with running_regions(
            settings, contents=(CONTENT,), lifetime_s=900, epochs_topic=topics.epochs.name
        ) as regions:
            yield RealMedia(settings, regions, _token(urls[0]))
    finally:
        for process in reversed(processes):
            process.stop()


@dataclass(frozen=True)
class Listed:
    """A media playlist as a player reads it: segments and the key URI of each."""

    media_sequence: int
    # Discontinuities up to the newest segment: those that left the window and its tags.
    discontinuities: int
    segments: dict[int, str]
    key_uris: dict[int, str]


def _listed(edge_url: str) -> Listed:
    response = httpx.get(f"{edge_url}/live/{CONTENT}/media.m3u8", timeout=5)
    assert response.status_code == 200, response.text
    sequence = discontinuities = 0
    segments: dict[int, str] = {}
    key_uris: dict[int, str] = {}
    key = None
    for line in response.text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            discontinuities += int(line.split(":", 1)[1])
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuities += 1
        elif match := KEY_LINE.match(line):
            key = match.group(1)
        elif line and not line.startswith("#"):
            seq = sequence + len(segments)
            segments[seq] = line
            assert key is not None, f"segment {seq} has no key:\n{response.text}"
            key_uris[seq] = key
    return Listed(sequence, discontinuities, segments, key_uris)


def _key(media: RealMedia, uri: str) -> bytes:
    answer = httpx.get(
        uri,
        headers={"Authorization": f"Bearer {media.token}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.content) == 16
    return answer.content


def _decrypt(key: bytes, seq: int, body: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(seq.to_bytes(16, "big"))).decryptor()
    plain = decryptor.update(body) + decryptor.finalize()
    return plain[: -plain[-1]]  # PKCS#7


def _segment(edge_url: str, seq: int) -> bytes:
    response = httpx.get(f"{edge_url}/live/{CONTENT}/seg-{seq}.ts", timeout=5)
    assert response.status_code == 200, f"segment {seq}: {response.text}"
    return response.content


def _probe(stream: bytes, tmp_path: Path, name: str) -> dict[str, object]:
    path = tmp_path / name
    path.write_bytes(stream)
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "stream=codec_type,codec_name,profile,start_time,width,height", str(path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    probed: dict[str, object] = json.loads(result.stdout)
    return probed


def _edge(media: RealMedia, region: int = 0) -> str:
    return media.regions[region].edge_urls()[0]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def _pid(media: RealMedia, role: str, region: int = 0) -> int:
    pid = media.regions[region].member(role).process.pid()
    assert pid is not None, f"{role} is not running"
    return pid


def test_an_edge_segment_decrypts_into_h264_and_aac(media: RealMedia, tmp_path: Path) -> None:
    listed = _listed(_edge(media))
    seq = max(listed.segments)
    uri = listed.key_uris[seq]
    license_url = f"http://127.0.0.1:{media.settings.services.license_port}/v1/keys/{CONTENT}/"
    assert uri.startswith(license_url)
    body = _segment(_edge(media), seq)
    assert len(body) % 16 == 0 and not body[0] == body[188] == 0x47  # not in the clear
    plain = _decrypt(_key(media, uri), seq, body)
    assert plain[0] == plain[188] == 0x47
    streams = _probe(plain, tmp_path, "segment.ts")["streams"]
    assert isinstance(streams, list)
    found = {(s["codec_type"], s["codec_name"], s["profile"]) for s in streams}
    assert found == {("video", "h264", "Main"), ("audio", "aac", "LC")}
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (640, 360)
    # The packagers keep content keys in private directories: this period's and the last.
    for name in ("a", "b"):
        keys = private_key_dir(region_store(media.settings, "eu-west"), name)
        assert keys.stat().st_mode & 0o777 == (keys / CONTENT).stat().st_mode & 0o777 == 0o700
        assert 1 <= len(list((keys / CONTENT).glob("*.key"))) <= 2


def test_keys_change_at_period_boundaries(media: RealMedia) -> None:
    edge = _edge(media)

    def spans_two_periods() -> bool:
        return len(set(_listed(edge).key_uris.values())) >= 2

    assert wait_until(spans_two_periods, timeout=3 * PERIOD_S, interval=0.5)
    listed = _listed(edge)
    uris = sorted(set(listed.key_uris.values()))
    periods = [int(uri.rsplit("/", 1)[1]) for uri in uris]
    assert periods[1] == periods[0] + 1
    keys = {uri: _key(media, uri) for uri in uris}
    assert len(set(keys.values())) == len(keys)
    for seq, uri in listed.key_uris.items():
        expected = int((seq * SEGMENT_S) // PERIOD_S)
        assert uri.endswith(f"/{expected}")
        body = _segment(edge, seq)
        assert _decrypt(keys[uri], seq, body)[0] == 0x47
        other = next(k for u, k in keys.items() if u != uri)
        wrong = Cipher(algorithms.AES(other), modes.CBC(seq.to_bytes(16, "big"))).decryptor()
        assert wrong.update(body[:16])[0] != 0x47 or wrong.update(body[16:32])[0] != 0x47


def test_both_regions_give_a_segment_the_same_name_key_and_timestamps(
    media: RealMedia, tmp_path: Path
) -> None:
    eu, us = _listed(_edge(media, 0)), _listed(_edge(media, 1))
    common = sorted(set(eu.segments) & set(us.segments))
    assert common, (eu, us)
    seq = common[-1]
    key = _key(media, eu.key_uris[seq])  # the same key in every region
    starts = []
    for region in (0, 1):
        plain = _decrypt(key, seq, _segment(_edge(media, region), seq))
        streams = _probe(plain, tmp_path, f"region-{region}.ts")["streams"]
        assert isinstance(streams, list)
        starts.append({s["codec_type"]: float(s["start_time"]) for s in streams})
    # Equal to well under a frame (audio may round differently by a few microseconds
    # where AAC frames straddle 90-kHz ticks; a player does not see it).
    assert starts[0].keys() == starts[1].keys()
    for codec, start in starts[0].items():
        assert start == pytest.approx(starts[1][codec], abs=0.001), (codec, starts)
    # Slot n's timestamps are a function of n alone: n * segment length on a daily
    # timeline, plus the fixed delay of the two MPEG-TS muxers (encoder, packager).
    assert starts[0]["video"] == pytest.approx(
        pts_offset_s(seq, SEGMENT_S) + 2 * MUX_DELAY_S, abs=0.001
    )


def _events_since(
    settings: Settings, topic: str, event_type: type[AvroEvent], since_ms: int
) -> list[Any]:
    """Events of this module's content on topic stamped from since_ms until now."""
    consumer = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex}"))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    starts = consumer.offsets_for_times(
        [TopicPartition(topic, p, since_ms) for p in partitions], timeout=10
    )
    consumer.assign(
        [tp if tp.offset >= 0 else TopicPartition(topic, tp.partition, OFFSET_END) for tp in starts]
    )
    codec = default_codec()
    found: list[Any] = []
    # The media processes keep publishing: read what is there by now, for 10 s at most.
    until_ms = int(time.time() * 1000)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            messages = consumer.consume(500, timeout=1.0)
            if not messages:
                break
            for message in messages:
                if message.error() is not None:
                    continue
                event = codec.decode_as(message.value() or b"", event_type)
                ours = getattr(event, "content_id", None) == CONTENT
                if ours and since_ms <= event.occurred_at <= until_ms:
                    found.append(event)
    finally:
        consumer.close()
    return found


def _manifest_states(settings: Settings, region: str, since_ms: int) -> list[PackagerManifestState]:
    states = _events_since(settings, "ingest.manifest-state", PackagerManifestState, since_ms)
    return [state for state in states if state.region == region]


def test_a_healthy_region_beats_ok_although_ffmpeg_finishes_segments_late(
    media: RealMedia,
) -> None:
    since = int(time.time() * 1000)
    time.sleep(3 * SEGMENT_S)
    beats = _events_since(media.settings, "ingest.health", IngestHealth, since)
    sources = {beat.source_id for beat in beats if beat.region == "eu-west"}
    assert sources == {"eu-west/ingest", "eu-west/packager-a", "eu-west/packager-b",
                       "eu-west/origin"}  # fmt: skip
    assert {(b.source_id, b.status) for b in beats if b.status != IngestStatus.OK} == set()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_simulated_players_play_encrypted_media_and_check_every_segment(
    media: RealMedia,
) -> None:
    region = media.regions[0]
    watched = {
        role: [_pid(media, role), *_children(_pid(media, role))]
        for role in ("ingest", "packager-a")
    }
    before = {role: sum(map(_cpu_seconds, pids)) for role, pids in watched.items()}
    began = time.monotonic()
    config = FleetConfig(
        entry_urls=tuple(f"{url}/live/{CONTENT}/master.m3u8" for url in region.edge_urls()),
        content_id=CONTENT,
        count=20,
        duration_s=4 * SEGMENT_S,
        key_token=media.token,
    )
    result = run_fleet_blocking(config)
    elapsed = time.monotonic() - began
    cpu = {
        role: (sum(map(_cpu_seconds, pids)) - before[role]) / elapsed
        for role, pids in watched.items()
    }
    # (The steering server is not part of this module: polls fail and players stay put.)
    errors = {k: v for k, v in result.summary().errors_by_reason.items() if "steering" not in k}
    assert errors == {}, errors
    assert all(len(report.segments) >= 2 for report in result.reports)
    print(
        f"\nCPU while 20 players played: ingest with its encoder {cpu['ingest']:.0%} of a "
        f"core, one packager with its ffmpeg {cpu['packager-a']:.0%}"
    )


def test_both_packagers_write_the_same_segments(media: RealMedia) -> None:
    since = int(time.time() * 1000)
    time.sleep(4 * SEGMENT_S)
    states = _manifest_states(media.settings, "eu-west", since)
    by_packager: dict[str, set[int]] = {}
    for state in states:
        by_packager.setdefault(state.packager_id, set()).add(state.last_segment_seq)
    assert set(by_packager) == {"eu-west/packager-a", "eu-west/packager-b"}
    a, b = by_packager["eu-west/packager-a"], by_packager["eu-west/packager-b"]
    # Each packaged (and announced) every segment; the edges of the span may differ.
    both = sorted(a & b)
    assert len(both) >= 3 and both == list(range(both[0], both[-1] + 1)), (a, b)


def test_killing_a_packager_leaves_no_gap_and_no_ffmpeg_behind(media: RealMedia) -> None:
    region = media.regions[0]
    wrapper = _pid(media, "packager-a")
    ffmpegs = _children(wrapper)
    assert ffmpegs, "the packager runs no ffmpeg"
    before = _listed(_edge(media))
    assert region.kill_packager("a")
    assert wait_until(lambda: not any(pid_alive(p) for p in ffmpegs), timeout=5)

    def moved_on() -> bool:
        return max(_listed(_edge(media)).segments) >= max(before.segments) + 3

    assert wait_until(moved_on, timeout=6 * SEGMENT_S, interval=0.5)
    after = _listed(_edge(media))
    assert after.discontinuities == before.discontinuities
    # Every segment the window lists was packaged (by the twin, after the kill).
    for seq in after.segments:
        assert len(_segment(_edge(media), seq)) % 16 == 0
    start_all(media.regions)


def test_a_killed_packager_ffmpeg_is_started_again_without_a_gap(media: RealMedia) -> None:
    wrapper = _pid(media, "packager-b")
    (packager,) = _children(wrapper)
    before = _listed(_edge(media))
    since = int(time.time() * 1000)
    os.kill(packager, signal.SIGKILL)

    def restarted() -> bool:
        current = _children(wrapper)
        return bool(current) and packager not in current

    assert wait_until(restarted, timeout=3 * SEGMENT_S)
    time.sleep(4 * SEGMENT_S)
    announced = {
        s.last_segment_seq
        for s in _manifest_states(media.settings, "eu-west", since)
        if s.packager_id == "eu-west/packager-b"
    }
    # The restarted ffmpeg packages every chunk from where the dead one stopped.
    assert len(announced) >= 3
    assert sorted(announced) == list(range(min(announced), max(announced) + 1))
    assert _listed(_edge(media)).discontinuities == before.discontinuities


def test_a_killed_encoder_is_started_again(media: RealMedia) -> None:
    ingest = _pid(media, "ingest")
    (encoder,) = _children(ingest)
    before = _listed(_edge(media))
    os.kill(encoder, signal.SIGKILL)

    def restarted() -> bool:
        current = _children(ingest)
        return bool(current) and encoder not in current

    assert wait_until(restarted, timeout=3 * SEGMENT_S)

    def playing_again() -> bool:
        return max(_listed(_edge(media)).segments) >= max(before.segments) + 4

    assert wait_until(playing_again, timeout=12 * SEGMENT_S, interval=0.5)
    after = _listed(_edge(media))
    # The slots the encoder missed are a gap: one discontinuity, numbering from the clock.
    assert after.discontinuities == before.discontinuities + 1
    newest = max(after.segments)
    assert abs(newest - int(time.time() / SEGMENT_S)) <= 3


def test_a_hung_encoder_is_replaced(media: RealMedia) -> None:
    ingest = _pid(media, "ingest")
    (encoder,) = _children(ingest)
    os.kill(encoder, signal.SIGSTOP)  # alive, but making nothing

    def replaced() -> bool:
        current = _children(ingest)
        return bool(current) and encoder not in current

    try:
        assert wait_until(replaced, timeout=6 * SEGMENT_S)
    finally:
        if pid_alive(encoder):
            os.kill(encoder, signal.SIGCONT)
    newest = int(time.time() / SEGMENT_S)
    assert wait_until(lambda: max(_listed(_edge(media)).segments) >= newest, timeout=5 * SEGMENT_S)


def test_a_region_kill_leaves_no_ffmpeg_behind(media: RealMedia) -> None:
    region = media.regions[1]
    wrappers = [_pid(media, role, 1) for role in ("ingest", "packager-a", "packager-b")]
    ffmpegs = [child for pid in wrappers for child in _children(pid)]
    assert len(ffmpegs) == 3
    region.kill()
    assert wait_until(lambda: not any(pid_alive(p) for p in ffmpegs), timeout=5)
    start_all(media.regions)
