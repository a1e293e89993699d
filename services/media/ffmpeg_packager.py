"""One packager of a region's hot-hot pair with ffmpeg: the encoder's chunks become HLS
segments encrypted with AES-128 under the key hierarchy's rotating content keys.

Per content a long-running `ffmpeg -c copy -copyts -f hls` reads the chunks back to back
on its stdin; its media sequence is the slot number (`-start_number` = the first chunk it
is fed), so both packagers of a pair, and every region, give a segment the same name,
sequence and IV. Before feeding chunk n the wrapper installs the content key of n's key
period (from this region's `KeyStore`) and rewrites the key info file atomically. When a
chunk is missing (the encoder restarted) ffmpeg is finished and started again at the
next chunk: the gap becomes a discontinuity in the shared window. A dead ffmpeg is
started again the same way, and so is ffmpeg at the daily timeline wrap, with no gap
(playlists tag that discontinuity themselves). Finished segments are published as
`seg-<n>.ts` and folded into the shared window exactly as the synthetic packager does
(`PackagerState`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from liveward.settings import Settings
from services.keys.errors import KeyHierarchyError
from services.keys.keystore import EPOCHS_TOPIC, EpochKeys, KeyStore
from services.media.children import start_child, stop_child
from services.media.encoding import is_timeline_start
from services.media.encryption import (
    key_info_text,
    key_period,
    key_uri,
    license_base_url,
    packaged_seq,
    packager_argv,
)
from services.media.layout import (
    chunk_dir,
    contribution_path,
    packaging_dir,
    private_key_dir,
    region_store,
    segment_dir,
    segment_path,
)
from services.media.packager import KEEP_WINDOWS, POLL_INTERVAL_S, PackagerState
from services.media.runtime import Lifetime
from services.media.segments import last_complete_segment
from services.media.store import prune_numbered
from streams.errors import StreamsError

log = logging.getLogger(__name__)

KEYS_READY_TIMEOUT_S = 30.0
# How long ffmpeg may take to finish its last segment when its input ends.
FINISH_TIMEOUT_S = 5.0
# How long to wait for ffmpeg to open the segment before a key change (it takes ms).
OPENED_TIMEOUT_S = 1.0
KEY_INFO = "key-info.txt"
# A (re)started ffmpeg begins at the newest chunk only if it is at most this many slots old.
FRESH_CHUNKS = 2


def contribution_slots(directory: Path) -> list[int]:
    """Slots of the finished chunks in a content's chunk directory, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    slots = []
    for name in names:
        if name.startswith("chunk-") and name.endswith(".ts") and name[6:-3].isdigit():
            slots.append(int(name[6:-3]))
    return sorted(slots)


class ContentPackager:
    """The packager's ffmpeg for one content, the chunks fed to it and the keys it uses."""

    def __init__(
        self,
        settings: Settings,
        region: str,
        name: str,
        content_id: str,
        keys: EpochKeys,
        state: PackagerState,
    ) -> None:
        self.settings = settings
        self.media = settings.media
        self.content_id = content_id
        self.keys = keys
        self.state = state
        self.store = region_store(settings, region)
        self.license_url = license_base_url(settings, region)
        self.workdir = packaging_dir(self.store, name, content_id)
        self.keydir = private_key_dir(self.store, name) / content_id
        self.child: subprocess.Popen[bytes] | None = None
        self.first_fed = -1
        self.last_fed = -1
        self.last_published = -1
        self.period: int | None = None
        self.refused: str | None = None
        self.restarts = 0
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        for directory in (self.keydir.parent, self.keydir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)

    def step(self, now: float) -> None:
        """Publish finished segments, then feed the next chunk (restarting ffmpeg at a gap
        or after it died)."""
        self._publish(now)
        if self.child is not None and self.child.poll() is not None:
            log.warning(
                "packager ffmpeg of %s exited with %s after chunk %d; starting again",
                self.content_id,
                self.child.returncode,
                self.last_fed,
            )
            self.restarts += 1
            self._publish(now)
            self.child = None
        available = contribution_slots(chunk_dir(self.store, self.content_id))
        if not available:
            return
        if self.child is None:
            newest = available[-1]
            # Chunks left by an earlier run of the region are no place to start from.
            fresh = newest >= last_complete_segment(now, self.media.segment_seconds) - FRESH_CHUNKS
            if newest > self.last_published and fresh:
                self._feed(newest, now)
            return
        wanted = self.last_fed + 1
        if wanted in available:
            if is_timeline_start(wanted, self.media.segment_seconds):
                # The timestamps restart (the daily wrap): ffmpeg's segmenter cannot follow
                # them back, so a new ffmpeg starts the new timeline, numbering unbroken.
                self.finish(now)
            self._feed(wanted, now)
        elif available[-1] > wanted:
            log.info("chunk %d of %s never came; packaging again from %d", wanted,
                     self.content_id, available[-1])  # fmt: skip
            self.finish(now)

    def _feed(self, seq: int, now: float) -> None:
        try:
            if self.child is None:
                self._install_key(seq)
                self.first_fed = seq
                self.child = start_child(
                    packager_argv(
                        self.media,
                        start_number=seq,
                        key_info=self.workdir / KEY_INFO,
                        out_dir=self.workdir,
                    ),
                    stdin=subprocess.PIPE,
                )
                log.info("packager ffmpeg of %s: PID %d from %d", self.content_id,
                         self.child.pid, seq)  # fmt: skip
            else:
                self._wait_opened(seq - 1, now)
                self._install_key(seq)
        except KeyHierarchyError as exc:
            if exc.reason != self.refused:
                log.warning("no key for segment %d of %s: %s", seq, self.content_id, exc.reason)
            self.refused = exc.reason
            self.finish(now)
            return
        self.refused = None
        chunk = contribution_path(self.store, self.content_id, seq).read_bytes()
        assert self.child is not None and self.child.stdin is not None
        try:
            self.child.stdin.write(chunk)
            self.child.stdin.flush()
        except (BrokenPipeError, ValueError):
            return  # it died: the next step sees it exited and starts it again
        self.last_fed = seq

    def _wait_opened(self, seq: int, now: float) -> None:
        """Wait until ffmpeg has opened segment seq (so it has read seq's key): the
        segment before it is finished, or seq is its first."""
        deadline = time.monotonic() + OPENED_TIMEOUT_S
        while seq > self.first_fed and self.last_published < seq - 1:
            if time.monotonic() >= deadline:
                log.warning("segment %d of %s not finished in time", seq - 1, self.content_id)
                return
            time.sleep(0.01)
            self._publish(now)

    def _install_key(self, seq: int) -> None:
        """Make the key of seq's period the one ffmpeg reads at its next segment start."""
        period = key_period(seq, self.media.segment_seconds, self.settings.keys.period_seconds)
        if period == self.period and self.child is not None:
            return
        key = self.keys.content_key(self.content_id, period)
        key_file = self.keydir / f"{period}.key"
        fresh = key_file.with_suffix(".new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.key)
        os.replace(fresh, key_file)
        info = self.workdir / KEY_INFO
        staged = info.with_suffix(".new")
        staged.write_text(
            key_info_text(key_uri(self.license_url, self.content_id, period), key_file)
        )
        os.replace(staged, info)
        # Only this period's key and the one before it (ffmpeg may still be on a segment
        # under it) stay on disk.
        keep = {key_file.name, f"{self.period}.key"}
        for old in self.keydir.glob("*.key"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
        self.period = period

    def _publish(self, now: float) -> None:
        try:
            names = os.listdir(self.workdir)
        except FileNotFoundError:
            return
        finished = sorted(s for s in map(packaged_seq, names) if s is not None)
        for seq in finished:
            target = segment_path(self.store, self.content_id, seq)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.workdir / f"out-{seq}.ts", target)
            if seq > self.last_published:
                self.last_published = seq
                self.state.fold(self.content_id, seq, now)
        if finished:
            prune_numbered(
                segment_dir(self.store, self.content_id),
                "seg-",
                ".ts",
                finished[-1] - KEEP_WINDOWS * self.media.playlist_segments,
            )

    def finish(self, now: float) -> None:
        """End ffmpeg's input so it finishes its last segment, publish it, and stop."""
        child, self.child = self.child, None
        if child is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            if child.stdin is not None:
                child.stdin.close()
        try:
            child.wait(FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop_child(child)
        self._publish(now)

    def pids(self) -> list[int]:
        return [] if self.child is None or self.child.poll() is not None else [self.child.pid]

    def stop(self) -> None:
        stop_child(self.child)
        self.child = None
        for key_file in self.keydir.glob("*.key"):
            key_file.unlink(missing_ok=True)


def open_keys(settings: Settings, region: str, epochs_topic: str | None) -> KeyStore:
    """This region's key store, caught up with the epochs topic (or after a timeout)."""
    keys = KeyStore(settings, region, topic=epochs_topic or EPOCHS_TOPIC)
    keys.start()
    if not keys.wait_ready(KEYS_READY_TIMEOUT_S):
        log.warning("key epochs not read within %.0fs", KEYS_READY_TIMEOUT_S)
    return keys


def run_ffmpeg_packager(
    settings: Settings,
    region: str,
    name: str,
    contents: tuple[str, ...],
    lifetime: Lifetime,
    *,
    epochs_topic: str | None = None,
) -> None:
    """Package every chunk of every content into encrypted HLS and beat, until the
    lifetime ends."""
    try:
        keys = open_keys(settings, region, epochs_topic)
    except StreamsError as exc:
        raise SystemExit(f"cannot read key epochs: {exc}") from exc
    state = PackagerState(settings, region, name, contents)
    packagers = [
        ContentPackager(settings, region, name, content_id, keys, state) for content_id in contents
    ]
    log.info("packager %s packaging %s with ffmpeg", state.source_id, ", ".join(contents))
    try:
        while lifetime.alive():
            now = time.time()
            for packager in packagers:
                packager.step(now)
            state.beat_if_due(now)
            lifetime.wait(POLL_INTERVAL_S)
    finally:
        for packager in packagers:
            packager.stop()
        state.close()
        keys.close()
