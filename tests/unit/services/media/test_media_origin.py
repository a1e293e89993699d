"""The origin: playlists from the shared manifest state, segments only if a packager made them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from liveward.settings import Settings
from services.media.asgi import Reply
from services.media.beats import manifest_event, manifest_key
from services.media.layout import segment_path
from services.media.origin import Origin
from services.media.segments import ingest_chunk, package_segment
from services.media.store import publish_file
from streams.events import PackagerManifestState


class FakeManifests:
    """Stands in for the compacted-topic view: a dict of states."""

    def __init__(self) -> None:
        self.states: dict[str, PackagerManifestState] = {}

    def get(self, key: str) -> PackagerManifestState | None:
        return self.states.get(key)

    def ready(self) -> bool:
        return True


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Origin, FakeManifests]:
    settings = Settings(state_dir=tmp_path, regions=("eu-west", "us-east"))
    manifests = FakeManifests()
    return Origin(settings, "eu-west", manifests), manifests  # type: ignore[arg-type]


def live(origin: Origin, manifests: FakeManifests, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        publish_file(
            segment_path(origin.store, "match", seq),
            package_segment(ingest_chunk("match", seq)),
            writer="t",
        )
    manifests.states[manifest_key("match", "eu-west")] = manifest_event(
        region="eu-west", content_id="match", packager_id="eu-west/packager-a",
        media_sequence=first, last_segment_seq=last, discontinuity_sequence=0,
        target_duration_ms=2000, segment_count=last - first + 1,
    )  # fmt: skip


def get(origin: Origin, path: str) -> Reply:
    return asyncio.run(origin.handle(path, {}))


def test_the_multivariant_playlist_offers_every_pathway(
    origin: tuple[Origin, FakeManifests],
) -> None:
    server, manifests = origin
    live(server, manifests, 10, 12)
    reply = get(server, "/live/match/master.m3u8")
    text = reply.body.decode()
    assert reply.status == 200
    assert 'SERVER-URI="http://127.0.0.1:8084/v1/steering/match",PATHWAY-ID="eu-west.cdn-a"' in text
    assert text.count("#EXT-X-STREAM-INF") == 4
    assert "http://127.0.0.1:8203/live/match/media.m3u8" in text


def test_the_media_playlist_follows_the_manifest_state(
    origin: tuple[Origin, FakeManifests],
) -> None:
    server, manifests = origin
    live(server, manifests, 10, 12)
    text = get(server, "/live/match/media.m3u8").body.decode()
    assert "#EXT-X-MEDIA-SEQUENCE:10" in text
    assert [line for line in text.splitlines() if line.startswith("seg-")] == [
        "seg-10.ts", "seg-11.ts", "seg-12.ts",
    ]  # fmt: skip


def test_segments_exist_only_if_a_packager_made_them(origin: tuple[Origin, FakeManifests]) -> None:
    server, manifests = origin
    live(server, manifests, 10, 12)
    assert get(server, "/live/match/seg-12.ts").body == package_segment(ingest_chunk("match", 12))
    missing = get(server, "/live/match/seg-13.ts")
    assert missing.status == 404
    assert b'"segment-not-found"' in missing.body


def test_refusals_carry_reasons(origin: tuple[Origin, FakeManifests]) -> None:
    server, manifests = origin
    assert b'"unknown-content"' in get(server, "/live/match/media.m3u8").body
    assert get(server, "/live/bad%id/media.m3u8").status == 400
    assert get(server, "/elsewhere").status == 404
    # A window an earlier run left on the topic, whose segments are gone from the store.
    live(server, manifests, 10, 12)
    segment_path(server.store, "match", 12).unlink()
    stale = get(server, "/live/match/media.m3u8")
    assert (stale.status, b'"no-live-segments"' in stale.body) == (404, True)
