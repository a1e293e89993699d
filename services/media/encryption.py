"""HLS AES-128 packaging with ffmpeg: key periods of segments, key URIs, the key info file
and the packager's ffmpeg command line. Pure.

A packager does not transcode: `ffmpeg -c copy -copyts -f hls` reads the contribution
chunks back to back on its stdin and writes MPEG-TS segments encrypted with AES-128-CBC.
With `-hls_flags periodic_rekey` it re-reads the key info file at every segment start,
so the wrapper switches keys on period boundaries by rewriting that file. The key info
has no IV line: ffmpeg then uses the media sequence number as the IV, which is also what
a player assumes for an `EXT-X-KEY` without IV, and what makes both packagers of a pair
and every region encrypt segment n alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from liveward.settings import MediaSettings, Settings
from liveward.topology import instance_port
from services.media.segments import TS_SYNC, segment_start

# What the packager's ffmpeg names its segments (media sequence = slot).
PACKAGED_NAME = re.compile(r"^out-(\d{1,12})\.ts$")
PACKAGED_PATTERN = "out-%d.ts"
# The first chunk must be probed before ffmpeg writes anything: one chunk is ~250 kB at
# the default bitrate, so this much input never waits for a second chunk.
PROBE_BYTES = 65_536
AES_BLOCK = 16


def key_period(seq: int, segment_seconds: float, period_seconds: int) -> int:
    """The key period of segment seq: the period its first moment falls in."""
    start_ms = round(segment_start(seq, segment_seconds) * 1000)
    return start_ms // (period_seconds * 1000)


def key_uri(license_url: str, content_id: str, period: int) -> str:
    """The license service's `GET /v1/keys/{content}/{period}` for one period."""
    return f"{license_url}/v1/keys/{content_id}/{period}"


def license_base_url(settings: Settings, region: str) -> str:
    """The license service of a region: instance i of `settings.regions` listens on
    `instance_port(services.license_port, i)` (as `live_system` starts them)."""
    index = settings.regions.index(region) if region in settings.regions else 0
    port = instance_port(settings.services.license_port, index)
    return f"http://{settings.services.host}:{port}"


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """Which key URI each segment of one content names: its period's key at a license
    service."""

    license_url: str
    content_id: str
    segment_seconds: float
    period_seconds: int

    def uri(self, seq: int) -> str:
        period = key_period(seq, self.segment_seconds, self.period_seconds)
        return key_uri(self.license_url, self.content_id, period)


def key_info_text(uri: str, key_file: Path) -> str:
    """ffmpeg's key info file: the URI players fetch, then where ffmpeg reads the key.

    No IV line, so the IV is the media sequence number (see the module docstring).
    """
    if "\n" in uri or "\n" in str(key_file):
        raise ValueError("a key URI or key path cannot hold a line break")
    return f"{uri}\n{key_file}\n"


def packager_argv(
    media: MediaSettings, *, start_number: int, key_info: Path, out_dir: Path
) -> list[str]:
    """The packager's ffmpeg: chunks on stdin, encrypted segments `out-<seq>.ts` in out_dir.

    `temp_file` makes a segment appear under its name only once it is complete; ffmpeg
    closes segment n when the key frame of chunk n + 1 arrives.
    """
    return [
        media.ffmpeg_binary,
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-probesize",
        str(PROBE_BYTES),
        "-analyzeduration",
        "0",
        "-f",
        "mpegts",
        "-i",
        "pipe:0",
        "-c",
        "copy",
        "-copyts",
        "-f",
        "hls",
        "-hls_time",
        f"{media.segment_seconds:.3f}",
        "-hls_list_size",
        str(media.playlist_segments),
        "-hls_segment_type",
        "mpegts",
        "-hls_key_info_file",
        str(key_info),
        "-hls_flags",
        "periodic_rekey+temp_file",
        "-start_number",
        str(start_number),
        "-hls_segment_filename",
        str(out_dir / PACKAGED_PATTERN),
        str(out_dir / "packager.m3u8"),
    ]


def packaged_seq(name: str) -> int | None:
    """The media sequence of a finished segment file of the packager's ffmpeg, or None."""
    match = PACKAGED_NAME.match(name)
    return int(match.group(1)) if match else None


def is_encrypted_segment(body: bytes) -> bool:
    """True if body can be an AES-128-CBC encrypted segment (PKCS#7: whole blocks)."""
    return len(body) > 0 and len(body) % AES_BLOCK == 0


def decrypts_to_transport_stream(body: bytes, key: bytes, seq: int) -> bool:
    """True if the first block of an encrypted segment, under key and IV = seq, starts
    an MPEG-TS packet: one AES block of work, however large the segment."""
    if not is_encrypted_segment(body):
        return False
    decryptor = Cipher(algorithms.AES(key), modes.CBC(seq.to_bytes(AES_BLOCK, "big"))).decryptor()
    return decryptor.update(body[:AES_BLOCK])[0] == TS_SYNC
