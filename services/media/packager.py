"""One packager of a region's hot-hot pair: packages ingest chunks into segments and keeps the
shared live window on the compacted `ingest.manifest-state` topic.

Both packagers of a pair package every segment: they number segments from the wall clock
and package the same chunk into the same bytes, so they write the same file under the
same name and fold it into the same window. Either can die without a gap; only when both
are gone does the region's origin go stale. Each beats `IngestHealth` (role PACKAGER)
every second, DEGRADED or FAILING when its input stops.

This module packages the synthetic chunks; `ffmpeg_packager` packages a real encoder's
chunks into encrypted HLS and shares `PackagerState` with it.
"""

from __future__ import annotations

import logging
import time

from liveward.settings import MediaSettings, Settings
from services.media.beats import (
    MANIFEST_TOPIC,
    Beat,
    HealthBeats,
    StatePublisher,
    lag_status,
    manifest_event,
    manifest_key,
)
from services.media.layout import chunk_path, region_store, segment_dir, segment_path
from services.media.manifest import LiveWindow, advance_window
from services.media.runtime import Lifetime
from services.media.segments import last_complete_segment, package_segment
from services.media.store import prune_numbered, publish_file, read_file
from streams.events import IngestRole, PackagerManifestState
from streams.views import CompactedTopicView

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
# A segment counts as due this long after its interval ends (time to receive and package).
DUE_GRACE_S = 0.5
# ffmpeg closes segment n only when chunk n + 1 arrives, one interval later; the encoder
# adds its own latency on top.
FFMPEG_EXTRA_GRACE_S = 1.0
VIEW_READY_TIMEOUT_S = 15.0
# Segments stay in the store for this many windows (players behind the live edge).
KEEP_WINDOWS = 3


def due_grace_s(media: MediaSettings) -> float:
    """How long after its interval ends a segment is due from a healthy packager."""
    if media.source == "ffmpeg":
        return media.segment_seconds + FFMPEG_EXTRA_GRACE_S
    return DUE_GRACE_S


def window_of(state: PackagerManifestState | None) -> LiveWindow | None:
    if state is None:
        return None
    return LiveWindow(state.media_sequence, state.last_segment_seq, state.discontinuity_sequence)


class PackagerState:
    """What one packager shares: the live window it folds each new segment into (on the
    compacted topic) and its heartbeats."""

    def __init__(
        self, settings: Settings, region: str, name: str, contents: tuple[str, ...]
    ) -> None:
        self.media = settings.media
        self.region = region
        self.contents = contents
        self.source_id = f"{region}/packager-{name}"
        self.view: CompactedTopicView[PackagerManifestState] = CompactedTopicView(
            settings, MANIFEST_TOPIC, PackagerManifestState
        )
        self.view.start()
        # The window must continue from what the partner published, or a restarted
        # packager would count a gap that never happened.
        if not self.view.wait_ready(VIEW_READY_TIMEOUT_S):
            log.warning(
                "manifest state not read within %.0fs; continuing from own state",
                VIEW_READY_TIMEOUT_S,
            )
        self.publisher = StatePublisher(settings)
        self.own: dict[str, LiveWindow | None] = dict.fromkeys(contents)
        self.produced_at_ms = dict.fromkeys(contents, 0)
        self.beats = HealthBeats(
            self.publisher,
            region=region,
            source_id=self.source_id,
            role=IngestRole.PACKAGER,
            start_at=time.time(),
        )

    def last_produced(self, content_id: str) -> int:
        mine = self.own[content_id]
        return mine.last_segment_seq if mine is not None else -1

    def fold(self, content_id: str, seq: int, now: float) -> LiveWindow:
        """Fold segment seq (already in the store) into the shared window and publish it."""
        mine = self.own[content_id]
        shared = window_of(self.view.get(manifest_key(content_id, self.region)))
        base = (
            shared
            if mine is None
            or (shared is not None and shared.last_segment_seq >= mine.last_segment_seq)
            else mine
        )
        window = advance_window(base, seq, self.media.playlist_segments)
        self.own[content_id] = window
        self.produced_at_ms[content_id] = int(now * 1000)
        self.publisher.offer(
            f"manifest|{content_id}",
            MANIFEST_TOPIC,
            manifest_event(
                region=self.region,
                content_id=content_id,
                packager_id=self.source_id,
                media_sequence=window.media_sequence,
                last_segment_seq=window.last_segment_seq,
                discontinuity_sequence=window.discontinuity_sequence,
                target_duration_ms=round(self.media.segment_seconds * 1000),
                segment_count=window.segment_count,
            ),
        )
        return window

    def beat_if_due(self, now: float) -> None:
        """One heartbeat per content each second, its status from the lag."""
        if not self.beats.due(now):
            return
        due = last_complete_segment(now - due_grace_s(self.media), self.media.segment_seconds)
        self.beats.send(
            now,
            (
                Beat(
                    content_id,
                    self.last_produced(content_id),
                    self.produced_at_ms[content_id],
                    lag_status(due, self.last_produced(content_id)),
                )
                for content_id in self.contents
            ),
        )

    def close(self) -> None:
        self.publisher.close()
        self.view.close()


def run_packager(
    settings: Settings, region: str, name: str, contents: tuple[str, ...], lifetime: Lifetime
) -> None:
    """Package every segment interval's chunk and beat, until the lifetime ends."""
    store = region_store(settings, region)
    media = settings.media
    state = PackagerState(settings, region, name, contents)
    writer = state.source_id.replace("/", "-")
    log.info("packager %s packaging %s", state.source_id, ", ".join(contents))
    try:
        while lifetime.alive():
            now = time.time()
            newest = last_complete_segment(now, media.segment_seconds)
            for content_id in contents:
                if state.last_produced(content_id) >= newest:
                    continue
                chunk = read_file(chunk_path(store, content_id, newest))
                if chunk is None:
                    continue
                publish_file(
                    segment_path(store, content_id, newest), package_segment(chunk), writer=writer
                )
                state.fold(content_id, newest, now)
                prune_numbered(
                    segment_dir(store, content_id),
                    "seg-",
                    ".ts",
                    newest - KEEP_WINDOWS * media.playlist_segments,
                )
            state.beat_if_due(now)
            lifetime.wait(POLL_INTERVAL_S)
    finally:
        state.close()
