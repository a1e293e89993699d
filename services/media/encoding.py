"""The real ingest encoder's plan: when it starts, which slot its first chunk is, its
timestamps and its ffmpeg command line. Pure.

The encoder (ffmpeg, lavfi `testsrc2` + `sine`, H.264 Main + AAC-LC) cuts its output into
contribution chunks of exactly one segment each (a GOP per segment), named by wall-clock
slot like every other part of the media plane. Its timestamps are a function of the slot
alone: the first video frame of slot n sits at `pts_offset_s(n)` plus `MUX_DELAY_S` once
per MPEG-TS muxer it passed (encoder, packager), so every region's encoder and every
packager (`-copyts`) give slot n the same PTS and a player moving between them sees one
continuous timeline. The offset wraps once a
day (MPEG-TS PTS wrap after 26.5 h): the first slot of a day starts a new timeline, which
playlists mark with `EXT-X-DISCONTINUITY` (`is_timeline_start`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from liveward.settings import MediaSettings
from services.media.segments import segment_at, segment_start

# PTS restart this often (less than the 33-bit, 90 kHz wrap of 95,443 s)...
TIMELINE_SECONDS = 86_400
# ...from here, not 0: the AAC encoder's priming would otherwise push the first audio
# timestamps below zero, and ffmpeg would shift that whole run by the priming (21 ms).
TIMELINE_START_S = 10.0
# What ffmpeg's MPEG-TS muxer adds to every timestamp by default (measured, ffmpeg 5.1);
# it keeps the encoder's audio priming off negative timestamps at a timeline's start.
MUX_DELAY_S = 1.4
# The encoder is launched this long before its first slot begins (ffmpeg's start-up).
LAUNCH_LEAD_S = 0.2
CHUNK_NAME = re.compile(r"^chunk-(\d{1,12})\.ts$")
AUDIO_SAMPLE_RATE = 48_000
SINE_HZ = 440


def slots_per_timeline(segment_seconds: float) -> int:
    """How many segment slots one timeline (one day of PTS) holds."""
    return max(1, math.floor(TIMELINE_SECONDS / segment_seconds))


def pts_offset_s(slot: int, segment_seconds: float) -> float:
    """Where slot's media starts on the timeline, in seconds (`-output_ts_offset`)."""
    return TIMELINE_START_S + (slot % slots_per_timeline(segment_seconds)) * segment_seconds


def is_timeline_start(slot: int, segment_seconds: float) -> bool:
    """True if slot starts a new timeline (its PTS restart near 0): a discontinuity."""
    return slot % slots_per_timeline(segment_seconds) == 0


def timeline_starts_before(seq: int, segment_seconds: float) -> int:
    """How many timeline starts lie in slots 1..seq-1 (their tags left a window at seq)."""
    return max(0, seq - 1) // slots_per_timeline(segment_seconds)


@dataclass(frozen=True, slots=True)
class EncoderRun:
    """One run of the encoder: its first slot, when to launch it, and how many chunks it
    makes before the timeline wraps (it then exits and the next run starts the new day)."""

    first_slot: int
    launch_at: float
    chunks: int
    pts_offset_s: float

    def last_slot(self) -> int:
        return self.first_slot + self.chunks - 1


def plan_run(now: float, segment_seconds: float, lead_s: float = LAUNCH_LEAD_S) -> EncoderRun:
    """The next run that can start on a slot boundary at least lead_s from now."""
    first = segment_at(now + lead_s, segment_seconds) + 1
    per_timeline = slots_per_timeline(segment_seconds)
    chunks = per_timeline - first % per_timeline
    return EncoderRun(
        first_slot=first,
        launch_at=segment_start(first, segment_seconds) - lead_s,
        chunks=chunks,
        pts_offset_s=pts_offset_s(first, segment_seconds),
    )


def gop_frames(media: MediaSettings) -> int:
    """Frames per GOP: one GOP per segment, so every segment starts on a key frame."""
    return max(1, round(media.video_fps * media.segment_seconds))


def encoder_argv(
    media: MediaSettings, run: EncoderRun, chunk_pattern: Path, listing: Path
) -> list[str]:
    """The ffmpeg command of one run: live test source, H.264 Main + AAC-LC, one chunk per
    slot (`chunk_pattern` holds `%d`, numbered from the run's first slot), every finished
    chunk appended to the CSV `listing`."""
    gop = str(gop_frames(media))
    kbps = media.video_bitrate_kbps
    return [
        media.ffmpeg_binary,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={media.video_width}x{media.video_height}:rate={media.video_fps}",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={SINE_HZ}:sample_rate={AUDIO_SAMPLE_RATE}",
        "-t",
        f"{run.chunks * media.segment_seconds:.3f}",
        "-c:v",
        "libx264",
        "-profile:v",
        "main",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        f"{kbps}k",
        "-maxrate",
        f"{kbps}k",
        "-bufsize",
        f"{kbps}k",
        "-g",
        gop,
        "-keyint_min",
        gop,
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-profile:a",
        "aac_low",
        "-b:a",
        f"{media.audio_bitrate_kbps}k",
        "-ac",
        "2",
        "-output_ts_offset",
        f"{run.pts_offset_s:.3f}",
        "-f",
        "segment",
        "-segment_time",
        f"{media.segment_seconds:.3f}",
        "-segment_format",
        "mpegts",
        # Each chunk restarts its continuity counters; saying so lets a packager read the
        # chunks back to back as one stream without flagging packets corrupt.
        "-segment_format_options",
        "mpegts_flags=+initial_discontinuity",
        "-segment_start_number",
        str(run.first_slot),
        "-segment_list",
        str(listing),
        "-segment_list_type",
        "csv",
        "-segment_list_flags",
        "live",
        "-reset_timestamps",
        "0",
        str(chunk_pattern),
    ]


def finished_chunks(listing: str) -> list[int]:
    """Slots of the chunks a CSV segment list names as finished, in order."""
    slots = []
    for line in listing.splitlines():
        match = CHUNK_NAME.match(line.split(",", 1)[0].strip())
        if match:
            slots.append(int(match.group(1)))
    return slots


def continuation_run(
    last_slot: int, segment_seconds: float, lead_s: float = LAUNCH_LEAD_S
) -> EncoderRun:
    """The run that takes over right after a run whose last chunk is last_slot (the next
    timeline's first run, launched while the old one finishes its last chunk)."""
    first = last_slot + 1
    per_timeline = slots_per_timeline(segment_seconds)
    return EncoderRun(
        first_slot=first,
        launch_at=segment_start(first, segment_seconds) - lead_s,
        chunks=per_timeline - first % per_timeline,
        pts_offset_s=pts_offset_s(first, segment_seconds),
    )
