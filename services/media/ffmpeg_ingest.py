"""An ingest point with a real encoder: ffmpeg makes a live H.264/AAC feed per content and
this wrapper hands its finished chunks to the packagers.

Each run of the encoder starts on a slot boundary and cuts one chunk per slot
(`encoding.plan_run`); a chunk the encoder's CSV list names as finished is moved into
the region's store as `chunk-<slot>.ts`, where both packagers pick it up. A dead encoder
(or a hung one, killed) is started again from the wall clock: the slots it missed are a
gap, which the packagers' shared window turns into an `EXT-X-DISCONTINUITY`. A run ends
itself where the timeline wraps (once a day); the next run is launched on time while it
finishes. The wrapper beats `IngestHealth` (role INGEST) every second, FAILING when
chunks stop coming.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from liveward.settings import MediaSettings, Settings
from services.media.beats import Beat, HealthBeats, StatePublisher, lag_status
from services.media.children import start_child, stop_child
from services.media.encoding import (
    LAUNCH_LEAD_S,
    EncoderRun,
    continuation_run,
    encoder_argv,
    finished_chunks,
    plan_run,
)
from services.media.layout import chunk_dir, contribution_path, encoder_dir, region_store
from services.media.runtime import Lifetime
from services.media.segments import last_complete_segment, segment_end
from services.media.store import prune_numbered
from streams.events import IngestRole

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
# Chunks the packagers may still want (a packager restarting mid-interval); older go.
KEEP_CHUNKS = 8
# A chunk is due this long after its slot ends (the encoder's own latency).
DUE_GRACE_S = 1.0
LISTING = "chunks.csv"
# An encoder that is alive but this many segments late with a chunk is hung: killed, and
# started again like a dead one.
STALLED_SEGMENTS = 2


@dataclass(slots=True)
class _Run:
    plan: EncoderRun
    child: subprocess.Popen[bytes]
    workdir: Path


class ContentEncoder:
    """The encoder runs of one content and the chunks they delivered."""

    def __init__(self, media: MediaSettings, store: Path, content_id: str) -> None:
        self.media = media
        self.store = store
        self.content_id = content_id
        self.runs: list[_Run] = []
        self.delivered = -1
        self.delivered_at_ms = 0
        self.restarts = 0
        self.planned: EncoderRun | None = None
        shutil.rmtree(encoder_dir(store, content_id), ignore_errors=True)

    def upcoming(self, now: float) -> EncoderRun:
        """The run to launch next: right after a live run, or from the wall clock (planned
        once, and again only if its launch time was missed)."""
        alive = [run for run in self.runs if run.child.poll() is None]
        if alive:
            return continuation_run(
                max(r.plan.last_slot() for r in alive), self.media.segment_seconds
            )
        if self.planned is None or now > self.planned.launch_at + LAUNCH_LEAD_S:
            self.planned = plan_run(now, self.media.segment_seconds)
        return self.planned

    def step(self, now: float) -> float:
        """Deliver finished chunks, retire ended runs, launch the next run when due; the
        time of the next launch (the caller wakes up for it)."""
        for run in list(self.runs):
            self._deliver(run, now)
            if run.child.poll() is None and now > self._overdue_at(run):
                log.warning(
                    "encoder of %s (PID %d) made no chunk since slot %d; killing it",
                    self.content_id,
                    run.child.pid,
                    self.delivered,
                )
                run.child.kill()
                run.child.wait()
            code = run.child.poll()
            if code is not None:
                if code != 0 or self.delivered < run.plan.last_slot():
                    self.restarts += 1
                    log.warning(
                        "encoder of %s exited with %s after slot %d; starting again",
                        self.content_id,
                        code,
                        self.delivered,
                    )
                shutil.rmtree(run.workdir, ignore_errors=True)
                self.runs.remove(run)
        upcoming = self.upcoming(now)
        if len(self.runs) < 2 and now >= upcoming.launch_at:
            self._launch(upcoming)
            self.planned = None
            upcoming = self.upcoming(now)
        return upcoming.launch_at

    def _overdue_at(self, run: _Run) -> float:
        """When a run that delivered nothing more counts as hung: STALLED_SEGMENTS after
        the end of the next chunk it owes."""
        owed = max(self.delivered + 1, run.plan.first_slot)
        return segment_end(owed, self.media.segment_seconds) + (
            STALLED_SEGMENTS * self.media.segment_seconds
        )

    def _launch(self, plan: EncoderRun) -> None:
        workdir = encoder_dir(self.store, self.content_id) / f"run-{plan.first_slot}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        argv = encoder_argv(self.media, plan, workdir / "chunk-%d.ts", workdir / LISTING)
        child = start_child(argv)
        log.info(
            "encoder of %s: PID %d from slot %d (%d chunks)",
            self.content_id,
            child.pid,
            plan.first_slot,
            plan.chunks,
        )
        self.runs.append(_Run(plan, child, workdir))

    def _deliver(self, run: _Run, now: float) -> None:
        try:
            listing = (run.workdir / LISTING).read_text()
        except FileNotFoundError:
            return
        for slot in finished_chunks(listing):
            if slot <= self.delivered:
                continue
            target = contribution_path(self.store, self.content_id, slot)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(run.workdir / f"chunk-{slot}.ts", target)
                self.delivered = slot
                self.delivered_at_ms = int(now * 1000)
        prune_numbered(
            chunk_dir(self.store, self.content_id), "chunk-", ".ts", self.delivered - KEEP_CHUNKS
        )

    def pids(self) -> list[int]:
        return [run.child.pid for run in self.runs if run.child.poll() is None]

    def stop(self) -> None:
        for run in self.runs:
            stop_child(run.child)
        self.runs.clear()


def run_ffmpeg_ingest(
    settings: Settings, region: str, contents: tuple[str, ...], lifetime: Lifetime
) -> None:
    """Run an encoder per content, deliver its chunks and beat, until the lifetime ends."""
    store = region_store(settings, region)
    media = settings.media
    source_id = f"{region}/ingest"
    encoders = {content_id: ContentEncoder(media, store, content_id) for content_id in contents}
    publisher = StatePublisher(settings)
    beats = HealthBeats(
        publisher, region=region, source_id=source_id, role=IngestRole.INGEST, start_at=time.time()
    )
    log.info("ingest %s encoding %s with ffmpeg", source_id, ", ".join(contents))
    try:
        while lifetime.alive():
            now = time.time()
            wake = now + POLL_INTERVAL_S
            for encoder in encoders.values():
                wake = min(wake, max(encoder.step(now), now))
            if beats.due(now):
                due = last_complete_segment(now - DUE_GRACE_S, media.segment_seconds)
                beats.send(
                    now,
                    (
                        Beat(
                            content_id,
                            encoder.delivered,
                            encoder.delivered_at_ms,
                            lag_status(due, encoder.delivered),
                        )
                        for content_id, encoder in encoders.items()
                    ),
                )
            lifetime.wait(wake - time.time())
    finally:
        for encoder in encoders.values():
            encoder.stop()
        publisher.close()
