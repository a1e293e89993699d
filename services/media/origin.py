"""A region's origin: live HLS over HTTP from the shared manifest state and the region's store.

- `/live/{content}/master.m3u8`: the multivariant playlist, with `EXT-X-CONTENT-STEERING`
  pointing at the steering service and one variant per (region, CDN) pathway.
- `/live/{content}/media.m3u8`: the live window the packagers published on
  `ingest.manifest-state` for (content, this region).
- `/live/{content}/seg-{n}.ts`: a segment a packager of this region wrote; 404 otherwise,
  so when both packagers are gone the origin goes stale rather than inventing media.

It beats `IngestHealth` (role ORIGIN) every second, FAILING when its window falls behind
the wall clock.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from liveward.settings import Settings
from liveward.topology import origin_port, pathway_id, pathways
from services.media.asgi import (
    PLAYLIST_TYPE,
    SEGMENT_TYPE,
    Reply,
    Scope,
    ServerMetrics,
    asgi_app,
    error_reply,
    serve_asgi,
)
from services.media.beats import (
    BEAT_INTERVAL_S,
    HEALTH_TOPIC,
    MANIFEST_TOPIC,
    StatePublisher,
    health_event,
    lag_status,
    manifest_key,
)
from services.media.encryption import KeyRotation, license_base_url
from services.media.layout import (
    MASTER_PLAYLIST,
    MEDIA_PLAYLIST,
    is_content_id,
    region_store,
    segment_path,
    segment_seq,
)
from services.media.manifest import (
    Variant,
    render_media_playlist,
    render_multivariant_playlist,
)
from services.media.packager import due_grace_s, window_of
from services.media.runtime import Lifetime
from services.media.segments import DECLARED_BITRATE_BPS, last_complete_segment
from services.media.store import read_file
from streams.events import IngestRole, IngestStatus, PackagerManifestState
from streams.views import CompactedTopicView

log = logging.getLogger(__name__)

PLAYLIST_CACHE_CONTROL = b"max-age=1"
# MPEG-TS packets and PES headers on top of the elementary streams' bitrates.
TS_OVERHEAD = 1.1
SEGMENT_CACHE_CONTROL = b"max-age=3600, immutable"


def steering_uri(settings: Settings, content_id: str) -> str:
    services = settings.services
    return f"http://{services.host}:{services.steering_port}/v1/steering/{content_id}"


def edge_url(settings: Settings, port: int) -> str:
    return f"http://{settings.services.host}:{port}"


class Origin:
    """Answers playlist and segment requests for one region."""

    def __init__(
        self,
        settings: Settings,
        region: str,
        manifests: CompactedTopicView[PackagerManifestState],
    ) -> None:
        self.settings = settings
        self.region = region
        self.manifests = manifests
        self.store = region_store(settings, region)
        self.variants = [Variant(p.id, edge_url(settings, p.edge_port)) for p in pathways(settings)]
        self.default_pathway = pathway_id(region, settings.media.cdns[0])
        self.encrypted = settings.media.source == "ffmpeg"
        self.license_url = license_base_url(settings, region)
        self.metrics = ServerMetrics(f"origin-{region}")

    def app(self) -> object:
        return asgi_app(self.handle, self.metrics, self.manifests.ready)

    async def handle(self, path: str, _scope: Scope) -> Reply:
        parts = path.split("/")
        if len(parts) != 4 or parts[0] or parts[1] != "live":
            return error_reply(404, "not-found", f"no route {path}")
        content_id, name = parts[2], parts[3]
        if not is_content_id(content_id):
            return error_reply(400, "bad-content-id", "content ids are [A-Za-z0-9._-], 64 at most")
        if name == MASTER_PLAYLIST:
            return self.multivariant(content_id)
        if name == MEDIA_PLAYLIST:
            return self.media_playlist(content_id)
        seq = segment_seq(name)
        if seq is None:
            return error_reply(404, "not-found", f"no object {name}")
        return self.segment(content_id, seq)

    def multivariant(self, content_id: str) -> Reply:
        if self.manifests.get(manifest_key(content_id, self.region)) is None:
            return error_reply(404, "unknown-content", f"{content_id} is not live in {self.region}")
        body = render_multivariant_playlist(
            content_id,
            self.variants,
            steering_uri=steering_uri(self.settings, content_id),
            default_pathway=self.default_pathway,
            **self._variant_facts(),
        )
        return Reply(
            200,
            body.encode(),
            [(b"content-type", PLAYLIST_TYPE), (b"cache-control", PLAYLIST_CACHE_CONTROL)],
        )

    def media_playlist(self, content_id: str) -> Reply:
        window = window_of(self.manifests.get(manifest_key(content_id, self.region)))
        if window is None:
            return error_reply(404, "unknown-content", f"{content_id} is not live in {self.region}")
        # A window left on the compacted topic by an earlier run may name segments this
        # store no longer has; listing them would send players to 404s.
        if not segment_path(self.store, content_id, window.last_segment_seq).exists():
            return error_reply(
                404, "no-live-segments", f"{content_id} has no live segments in {self.region}"
            )
        media = self.settings.media
        keys = (
            KeyRotation(
                self.license_url,
                content_id,
                media.segment_seconds,
                self.settings.keys.period_seconds,
            )
            if self.encrypted
            else None
        )
        body = render_media_playlist(
            window,
            segment_seconds=media.segment_seconds,
            window=media.playlist_segments,
            keys=keys,
            timeline_wraps=self.encrypted,
        )
        return Reply(
            200,
            body.encode(),
            [(b"content-type", PLAYLIST_TYPE), (b"cache-control", PLAYLIST_CACHE_CONTROL)],
        )

    def _variant_facts(self) -> dict[str, Any]:
        """What the multivariant playlist declares: the real encoder's picture and
        bitrate, or the stand-in's nominal ones."""
        media = self.settings.media
        if not self.encrypted:
            return {"bandwidth_bps": DECLARED_BITRATE_BPS}
        kbps = media.video_bitrate_kbps + media.audio_bitrate_kbps
        return {
            "bandwidth_bps": round(kbps * 1000 * TS_OVERHEAD),
            "resolution": f"{media.video_width}x{media.video_height}",
        }

    def segment(self, content_id: str, seq: int) -> Reply:
        data = read_file(segment_path(self.store, content_id, seq))
        if data is None:
            return error_reply(
                404,
                "segment-not-found",
                f"segment {seq} of {content_id} was not packaged in {self.region}",
            )
        return Reply(
            200, data, [(b"content-type", SEGMENT_TYPE), (b"cache-control", SEGMENT_CACHE_CONTROL)]
        )

    def beat(self, publisher: StatePublisher, contents: tuple[str, ...], beat_seq: int) -> None:
        now = time.time()
        media = self.settings.media
        due = last_complete_segment(now - due_grace_s(media), media.segment_seconds)
        for content_id in contents:
            state = self.manifests.get(manifest_key(content_id, self.region))
            last = state.last_segment_seq if state is not None else -1
            publisher.offer(
                f"health|{content_id}",
                HEALTH_TOPIC,
                health_event(
                    region=self.region,
                    source_id=f"{self.region}/origin",
                    role=IngestRole.ORIGIN,
                    content_id=content_id,
                    beat_seq=beat_seq,
                    last_segment_seq=last,
                    last_segment_at_ms=state.occurred_at if state is not None else 0,
                    status=lag_status(due, last) if state is not None else IngestStatus.FAILING,
                ),
            )


def run_origin(
    settings: Settings, region: str, contents: tuple[str, ...], lifetime: Lifetime
) -> None:
    """Serve the region's origin on its port until SIGTERM (or the lifetime ends)."""
    manifests: CompactedTopicView[PackagerManifestState] = CompactedTopicView(
        settings, MANIFEST_TOPIC, PackagerManifestState
    )
    manifests.start()
    origin = Origin(settings, region, manifests)
    publisher = StatePublisher(settings)

    def beat_forever() -> None:
        beat_seq = 0
        while not lifetime.stop.wait(BEAT_INTERVAL_S):
            origin.beat(publisher, contents, beat_seq)
            beat_seq += 1

    threading.Thread(target=beat_forever, name="origin-beats", daemon=True).start()
    lifetime.terminate_self_at_deadline()

    def stop() -> None:
        lifetime.stop.set()
        publisher.close()
        manifests.close()

    port = origin_port(settings, region)
    log.info("origin %s on %s:%d", region, settings.services.host, port)
    serve_asgi(origin.app(), settings.services.host, port, on_stop=stop)
