"""Segment numbering from the wall clock and the deterministic bytes of chunks and segments. Pure.

Every ingest point and packager numbers segments the same way, `floor(t / segment_seconds)`,
so the two packagers of a pair (and the pairs of every region) give the same segment the
same name and media sequence without talking to each other. Segment n covers
[n * segment_seconds, (n + 1) * segment_seconds) and can be produced once that interval ends.
"""

from __future__ import annotations

import hashlib
import math

TS_PACKET = 188
TS_SYNC = 0x47
# Stand-in media until the real encoder (issue 7): 16 transport-stream packets per segment.
SEGMENT_PACKETS = 16
SEGMENT_BYTES = TS_PACKET * SEGMENT_PACKETS
CHUNK_PAYLOAD = TS_PACKET - 4
# The bitrate the multivariant playlist declares and players report (CMCD br); the
# generated stand-in segments are far smaller so thousands of players fit on 2 cores.
DECLARED_BITRATE_BPS = 3_000_000


def segment_at(epoch_s: float, segment_seconds: float) -> int:
    """The number of the segment whose interval contains epoch_s."""
    return math.floor(epoch_s / segment_seconds)


def last_complete_segment(epoch_s: float, segment_seconds: float) -> int:
    """The newest segment whose interval has ended by epoch_s."""
    return segment_at(epoch_s, segment_seconds) - 1


def segment_start(seq: int, segment_seconds: float) -> float:
    """Epoch seconds at which segment seq begins."""
    return seq * segment_seconds


def segment_end(seq: int, segment_seconds: float) -> float:
    return (seq + 1) * segment_seconds


def ingest_chunk(content_id: str, seq: int) -> bytes:
    """The contribution bytes an ingest point delivers for one segment interval.

    Deterministic in (content, seq): every region's ingest sees the same feed, as if the
    same encoder contributed to all of them.
    """
    seed = hashlib.sha256(f"{content_id}|{seq}".encode()).digest()
    body = (seed * (CHUNK_PAYLOAD * SEGMENT_PACKETS // len(seed) + 1))[
        : CHUNK_PAYLOAD * SEGMENT_PACKETS
    ]
    header = segment_label(content_id, seq)
    return header + body[len(header) :]


def segment_label(content_id: str, seq: int) -> bytes:
    """The label a segment's first packet starts with; players check it."""
    return f"liveward content={content_id} seq={seq} ".encode()


def package_segment(chunk: bytes) -> bytes:
    """Wrap a chunk into MPEG-TS-shaped packets (sync byte, PID 0x100, continuity counter).

    The same chunk always gives the same bytes, so both packagers of a pair write
    identical files under the same name.
    """
    packets = []
    for index in range(0, len(chunk), CHUNK_PAYLOAD):
        counter = (index // CHUNK_PAYLOAD) & 0x0F
        payload = chunk[index : index + CHUNK_PAYLOAD].ljust(CHUNK_PAYLOAD, b"\xff")
        packets.append(bytes((TS_SYNC, 0x41 if index == 0 else 0x01, 0x00, 0x10 | counter)))
        packets.append(payload)
    return b"".join(packets)


def is_segment_of(body: bytes, content_id: str, seq: int) -> bool:
    """True if body is a whole packaged segment carrying (content_id, seq)."""
    return (
        len(body) > 4
        and len(body) % TS_PACKET == 0
        and body[0] == TS_SYNC
        and body[4:].startswith(segment_label(content_id, seq))
    )
