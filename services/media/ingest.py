"""An ingest point: takes a region's live contribution feed and hands chunks to the packagers.

The feed is simulated: at the end of every segment interval the ingest point drops that
interval's chunk into the region's store, where both packagers pick it up. Without it the
packagers have nothing to package, so losing the ingest point starves the whole region.
It beats `IngestHealth` (role INGEST) every second.
"""

from __future__ import annotations

import logging
import time

from liveward.settings import Settings
from services.media.beats import HEALTH_TOPIC, StatePublisher, health_event
from services.media.layout import chunk_dir, chunk_path, region_store
from services.media.runtime import Lifetime
from services.media.segments import ingest_chunk, last_complete_segment, segment_end
from services.media.store import prune_numbered, publish_file
from streams.events import IngestRole, IngestStatus

log = logging.getLogger(__name__)

# Chunks the packagers may still want (a packager restarting mid-interval); older go.
KEEP_CHUNKS = 8
BEAT_INTERVAL_S = 1.0


def run_ingest(
    settings: Settings, region: str, contents: tuple[str, ...], lifetime: Lifetime
) -> None:
    """Deliver a chunk per segment interval and beat, until the lifetime ends."""
    store = region_store(settings, region)
    segment_seconds = settings.media.segment_seconds
    source_id = f"{region}/ingest"
    publisher = StatePublisher(settings)
    delivered = dict.fromkeys(contents, -1)
    delivered_at_ms = dict.fromkeys(contents, 0)
    beat_seq = 0
    next_beat = time.time()
    log.info("ingest %s delivering %s", source_id, ", ".join(contents))
    try:
        while lifetime.alive():
            now = time.time()
            newest = last_complete_segment(now, segment_seconds)
            for content_id in contents:
                if newest > delivered[content_id]:
                    publish_file(
                        chunk_path(store, content_id, newest),
                        ingest_chunk(content_id, newest),
                        writer=source_id.replace("/", "-"),
                    )
                    delivered[content_id] = newest
                    delivered_at_ms[content_id] = int(now * 1000)
                    prune_numbered(
                        chunk_dir(store, content_id), "chunk-", ".bin", newest - KEEP_CHUNKS
                    )
            if now >= next_beat:
                for content_id in contents:
                    publisher.offer(
                        f"health|{content_id}",
                        HEALTH_TOPIC,
                        health_event(
                            region=region,
                            source_id=source_id,
                            role=IngestRole.INGEST,
                            content_id=content_id,
                            beat_seq=beat_seq,
                            last_segment_seq=delivered[content_id],
                            last_segment_at_ms=delivered_at_ms[content_id],
                            status=IngestStatus.OK,
                        ),
                    )
                beat_seq += 1
                next_beat = max(next_beat + BEAT_INTERVAL_S, now)
            wake = min(segment_end(newest + 1, segment_seconds), next_beat)
            lifetime.wait(wake - time.time())
    finally:
        publisher.close()
