"""The live window both packagers of a pair agree on, and the playlists an origin renders. Pure.

The window state (media sequence, newest segment, discontinuity count) is the payload of
`PackagerManifestState` on the compacted `ingest.manifest-state` topic. Each packager
folds the newest segment into the latest state it has read, so the two of a pair reach
the same state whichever of them produced a segment first; a gap (both down) starts a
new run after an `EXT-X-DISCONTINUITY`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.media.encoding import is_timeline_start, timeline_starts_before
from services.media.encryption import KeyRotation
from services.media.layout import MEDIA_PLAYLIST, segment_name
from services.media.segments import segment_start

HLS_VERSION = 6
CODECS = "avc1.4d401f,mp4a.40.2"
RESOLUTION = "1280x720"


@dataclass(frozen=True, slots=True)
class LiveWindow:
    """The segments a media playlist lists: [media_sequence, last_segment_seq].

    `discontinuity_sequence` counts the gaps since the stream began; when the window
    starts right after the latest gap (a run shorter than the window) its first segment
    carries the discontinuity tag.
    """

    media_sequence: int
    last_segment_seq: int
    discontinuity_sequence: int

    @property
    def segment_count(self) -> int:
        return self.last_segment_seq - self.media_sequence + 1

    def starts_after_gap(self, window: int) -> bool:
        return self.discontinuity_sequence > 0 and self.segment_count < window


def advance_window(previous: LiveWindow | None, seq: int, window: int) -> LiveWindow:
    """The window after segment seq was produced.

    A segment at or just behind the window's end changes nothing (the partner packager
    already added it); the next segment slides the window; anything further, or a window
    far ahead of seq (left by a run that numbered segments differently), starts a new run.
    """
    if previous is None:
        return LiveWindow(seq, seq, 0)
    if previous.last_segment_seq > seq + 1:
        return LiveWindow(seq, seq, previous.discontinuity_sequence + 1)
    if seq <= previous.last_segment_seq:
        return previous
    if seq == previous.last_segment_seq + 1:
        return LiveWindow(
            max(previous.media_sequence, seq - window + 1), seq, previous.discontinuity_sequence
        )
    return LiveWindow(seq, seq, previous.discontinuity_sequence + 1)


def _program_date_time(epoch_s: float) -> str:
    stamp = datetime.fromtimestamp(epoch_s, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def render_media_playlist(
    live: LiveWindow,
    *,
    segment_seconds: float,
    window: int,
    keys: KeyRotation | None = None,
    timeline_wraps: bool = False,
) -> str:
    """The live media playlist of a window (HLS, one EXT-X-PROGRAM-DATE-TIME per segment).

    With `keys`, segments are AES-128 encrypted: an `EXT-X-KEY` opens the window and
    follows every key-period change. It carries no IV, so a player uses the media
    sequence number, as the packagers did. With `timeline_wraps` (a real encoder's
    timestamps restart once a day, `encoding.is_timeline_start`) a segment starting a
    new timeline carries `EXT-X-DISCONTINUITY` too.
    """
    # EXT-X-DISCONTINUITY-SEQUENCE counts the tags that left the playlist; while the
    # tagged segment is still listed, its own tag is not counted yet.
    tagged = live.starts_after_gap(window)
    discontinuities = live.discontinuity_sequence - (1 if tagged else 0)
    if timeline_wraps:
        discontinuities += timeline_starts_before(live.media_sequence, segment_seconds)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{math.ceil(segment_seconds)}",
        f"#EXT-X-MEDIA-SEQUENCE:{live.media_sequence}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}",
    ]
    key_line = None
    for seq in range(live.media_sequence, live.last_segment_seq + 1):
        gap = tagged and seq == live.media_sequence
        wrap = timeline_wraps and seq > 0 and is_timeline_start(seq, segment_seconds)
        if gap or wrap:
            lines.append("#EXT-X-DISCONTINUITY")
        if keys is not None:
            current = f'#EXT-X-KEY:METHOD=AES-128,URI="{keys.uri(seq)}"'
            if current != key_line:
                lines.append(current)
                key_line = current
        lines.append(
            f"#EXT-X-PROGRAM-DATE-TIME:{_program_date_time(segment_start(seq, segment_seconds))}"
        )
        lines.append(f"#EXTINF:{segment_seconds:.3f},")
        lines.append(segment_name(seq))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Variant:
    """One pathway's copy of the stream: its pathway id and the media playlist URL there."""

    pathway_id: str
    base_url: str


def render_multivariant_playlist(
    content_id: str,
    variants: Sequence[Variant],
    *,
    steering_uri: str,
    default_pathway: str,
    bandwidth_bps: int,
    resolution: str = RESOLUTION,
) -> str:
    """The multivariant playlist: content steering, and one variant per pathway.

    Every variant points at its CDN edge with an absolute URL, so a player that loaded
    this playlist from one edge can move to any other pathway without reloading it.
    """
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-CONTENT-STEERING:SERVER-URI="{steering_uri}",PATHWAY-ID="{default_pathway}"',
    ]
    for variant in variants:
        lines.append(
            f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth_bps},CODECS="{CODECS}",'
            f'RESOLUTION={resolution},PATHWAY-ID="{variant.pathway_id}"'
        )
        lines.append(f"{variant.base_url}/live/{content_id}/{MEDIA_PLAYLIST}")
    return "\n".join(lines) + "\n"
