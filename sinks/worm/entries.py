"""One license log entry: where Kafka held it and the event's bytes; the leaf data of the tree.

An entry (the `d` of the RFC 6962 leaf hash `SHA-256(0x00 ‖ d)`) is, big-endian:

    offset  size  field
    0       1     entry format version, 0x01
    1       4     Kafka partition of drm.licenses (u32)
    5       8     Kafka offset (i64, >= 0)
    13      8     Kafka record timestamp, epoch ms (i64)
    21      n     the LicenseIssued event, Avro single-object encoding (C3 01, fingerprint, body)

The Kafka coordinates are inside the hash so the log's order and the sink's
"skip what is already logged" rule are themselves covered by the signatures.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sinks.worm.errors import LogCorrupt

ENTRY_VERSION = 1
_HEADER = struct.Struct(">BIqq")
HEADER_SIZE = _HEADER.size


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A LicenseIssued event as the log stores it."""

    partition: int
    offset: int
    timestamp_ms: int
    event: bytes

    def encode(self) -> bytes:
        return (
            _HEADER.pack(ENTRY_VERSION, self.partition, self.offset, self.timestamp_ms) + self.event
        )

    @classmethod
    def decode(cls, data: bytes) -> LogEntry:
        """Read an entry; LogCorrupt(reason=malformed-entry) when the bytes are not one."""
        if len(data) < HEADER_SIZE:
            raise _malformed(f"entry of {len(data)} bytes is shorter than its header")
        version, partition, offset, timestamp_ms = _HEADER.unpack_from(data)
        if version != ENTRY_VERSION:
            raise _malformed(f"entry format version {version} is unknown")
        if offset < 0:
            raise _malformed(f"negative Kafka offset {offset}")
        return cls(partition, offset, timestamp_ms, data[HEADER_SIZE:])


def _malformed(detail: str) -> LogCorrupt:
    return LogCorrupt(detail, reason="malformed-entry")
