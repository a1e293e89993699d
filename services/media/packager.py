"""One packager of a region's hot-hot pair: packages ingest chunks into segments and keeps the
shared live window on the compacted `ingest.manifest-state` topic.

Both packagers of a pair package every segment: they number segments from the wall clock
and package the same chunk into the same bytes, so they write the same file under the
same name and fold it into the same window. Either can die without a gap; only when both
are gone does the region's origin go stale. Each beats `IngestHealth` (role PACKAGER)
every second, DEGRADED or FAILING when its input stops.
"""

from __future__ import annotations

import logging
import time

from liveward.settings import Settings
from services.media.beats import (
    HEALTH_TOPIC,
    MANIFEST_TOPIC,
    StatePublisher,
    health_event,
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
BEAT_INTERVAL_S = 1.0
# A segment counts as due this long after its interval ends (time to receive and package).
DUE_GRACE_S = 0.5
VIEW_READY_TIMEOUT_S = 15.0
# Segments stay in the store for this many windows (players behind the live edge).
KEEP_WINDOWS = 3


def window_of(state: PackagerManifestState | None) -> LiveWindow | None:
    if state is None:
        return None
    return LiveWindow(state.media_sequence, state.last_segment_seq, state.discontinuity_sequence)


def run_packager(
    settings: Settings, region: str, name: str, contents: tuple[str, ...], lifetime: Lifetime
) -> None:
    """Package every segment interval's chunk and beat, until the lifetime ends."""
    store = region_store(settings, region)
    media = settings.media
    source_id = f"{region}/packager-{name}"
    writer = source_id.replace("/", "-")
    view: CompactedTopicView[PackagerManifestState] = CompactedTopicView(
        settings, MANIFEST_TOPIC, PackagerManifestState
    )
    view.start()
    # The window must continue from what the partner published, or a restarted packager
    # would count a gap that never happened.
    if not view.wait_ready(VIEW_READY_TIMEOUT_S):
        log.warning(
            "manifest state not read within %.0fs; continuing from own state", VIEW_READY_TIMEOUT_S
        )
    publisher = StatePublisher(settings)
    own: dict[str, LiveWindow | None] = dict.fromkeys(contents)
    produced_at_ms = dict.fromkeys(contents, 0)
    beat_seq = 0
    next_beat = time.time()
    log.info("packager %s packaging %s", source_id, ", ".join(contents))
    try:
        while lifetime.alive():
            now = time.time()
            newest = last_complete_segment(now, media.segment_seconds)
            for content_id in contents:
                mine = own[content_id]
                if mine is not None and mine.last_segment_seq >= newest:
                    continue
                chunk = read_file(chunk_path(store, content_id, newest))
                if chunk is None:
                    continue
                publish_file(
                    segment_path(store, content_id, newest), package_segment(chunk), writer=writer
                )
                shared = window_of(view.get(manifest_key(content_id, region)))
                base = (
                    shared
                    if mine is None
                    or (shared is not None and shared.last_segment_seq >= mine.last_segment_seq)
                    else mine
                )
                window = advance_window(base, newest, media.playlist_segments)
                own[content_id] = window
                produced_at_ms[content_id] = int(now * 1000)
                publisher.offer(
                    f"manifest|{content_id}",
                    MANIFEST_TOPIC,
                    manifest_event(
                        region=region,
                        content_id=content_id,
                        packager_id=source_id,
                        media_sequence=window.media_sequence,
                        last_segment_seq=window.last_segment_seq,
                        discontinuity_sequence=window.discontinuity_sequence,
                        target_duration_ms=round(media.segment_seconds * 1000),
                        segment_count=window.segment_count,
                    ),
                )
                prune_numbered(
                    segment_dir(store, content_id),
                    "seg-",
                    ".ts",
                    newest - KEEP_WINDOWS * media.playlist_segments,
                )
            if now >= next_beat:
                due = last_complete_segment(now - DUE_GRACE_S, media.segment_seconds)
                for content_id in contents:
                    mine = own[content_id]
                    last = mine.last_segment_seq if mine is not None else -1
                    publisher.offer(
                        f"health|{content_id}",
                        HEALTH_TOPIC,
                        health_event(
                            region=region,
                            source_id=source_id,
                            role=IngestRole.PACKAGER,
                            content_id=content_id,
                            beat_seq=beat_seq,
                            last_segment_seq=last,
                            last_segment_at_ms=produced_at_ms[content_id],
                            status=lag_status(due, last),
                        ),
                    )
                beat_seq += 1
                next_beat = max(next_beat + BEAT_INTERVAL_S, now)
            lifetime.wait(POLL_INTERVAL_S)
    finally:
        publisher.close()
        view.close()
