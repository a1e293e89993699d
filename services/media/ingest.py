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
from services.media.beats import Beat, HealthBeats, StatePublisher
from services.media.layout import chunk_dir, chunk_path, region_store
from services.media.runtime import Lifetime
from services.media.segments import ingest_chunk, last_complete_segment, segment_end
from services.media.store import prune_numbered, publish_file
from streams.events import IngestRole, IngestStatus

log = logging.getLogger(__name__)

# Chunks the packagers may still want (a packager restarting mid-interval); older go.
KEEP_CHUNKS = 8


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
    beats = HealthBeats(
        publisher, region=region, source_id=source_id, role=IngestRole.INGEST, start_at=time.time()
    )
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
            if beats.due(now):
                beats.send(
                    now,
                    (Beat(c, delivered[c], delivered_at_ms[c], IngestStatus.OK) for c in contents),
                )
            wake = min(segment_end(newest + 1, segment_seconds), beats.next_at)
            lifetime.wait(wake - time.time())
    finally:
        publisher.close()
