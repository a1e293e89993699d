"""Validated samples to `qoe.telemetry` records: pseudonymised, geo-stamped, Avro-encoded.

The bridge writes the Avro single-object encoding of `QoETelemetrySample` itself, in one
tight loop per batch, instead of building an event object and a dict per sample for
fastavro: that costs ~7 us a record, this ~3. What repeats within a batch (region, epoch,
geo, CDN and content names, small integers) is encoded once. `SampleEncoder` refuses to
start unless the current schema is exactly the field list it writes, so a schema change
cannot silently produce wrong bytes; tests decode its output with the project's codec.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.bridge.pseudonyms import EpochPseudonyms
from services.bridge.samples import PlayerSample
from streams.codec import MAGIC, AvroCodec
from streams.events import QoETelemetrySample

SCHEMA_NAME = QoETelemetrySample.SCHEMA_NAME

# (field, Avro type) in schema order: what `encode_batch` writes, byte for byte.
WRITTEN_FIELDS: tuple[tuple[str, Any], ...] = (
    ("event_id", "string"),
    ("occurred_at", "long"),
    ("region", "string"),
    ("session_ref", "string"),
    ("viewer_pseudonym", "string"),
    ("pseudonym_epoch", "string"),
    ("content_id", "string"),
    ("cdn", "string"),
    ("serving_region", "string"),
    ("country", "string"),
    ("subdivision", "string"),
    ("sampled_at", "long"),
    ("bitrate_kbps", "int"),
    ("buffer_ms", "int"),
    ("play_ms", "int"),
    ("rebuffer_count", "int"),
    ("rebuffer_ms", "int"),
    ("startup_ms", ["null", "int"]),
    ("exited_before_start", "boolean"),
    ("error_code", ["null", "string"]),
    ("object_type", ["null", "string"]),
    ("throughput_kbps", ["null", "int"]),
    ("top_bitrate_kbps", ["null", "int"]),
)

UNKNOWN_COUNTRY = "--"


def _varint(unsigned: int) -> bytes:
    out = bytearray()
    while unsigned > 0x7F:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


def encode_long(value: int) -> bytes:
    """Avro int/long: zig-zag, then little-endian base-128 varint."""
    return _varint((value << 1) ^ (value >> 63))


# Bitrates, buffer lengths and play times are mostly below this: a list index beats the loop.
_SMALL_LONGS = tuple(encode_long(n) for n in range(1 << 16))
_SMALL = len(_SMALL_LONGS)
# The low 14 bits of a zig-zagged long as its first two varint bytes (both continued).
_LOW_14 = tuple(bytes(((n & 0x7F) | 0x80, (n >> 7) | 0x80)) for n in range(1 << 14))


class _TimestampWriter:
    """Encodes epoch-ms longs: the bits above the lowest 14 change every 8 s, so cache them."""

    __slots__ = ("_high",)

    def __init__(self) -> None:
        self._high: dict[int, bytes] = {}

    def __call__(self, value: int) -> bytes:
        if value < _SMALL:
            return _SMALL_LONGS[value] if value >= 0 else encode_long(value)
        zigzag = value << 1
        high = zigzag >> 14
        tail = self._high.get(high)
        if tail is None:
            tail = self._high[high] = _varint(high)
        return _LOW_14[zigzag & 0x3FFF] + tail


def encode_string(value: str) -> bytes:
    raw = value.encode()
    return encode_long(len(raw)) + raw


_HEX_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_NULL = b"\x00"
_SOME = b"\x02"
_FALSE = b"\x00"
_TRUE = b"\x01"
_OBJECT_TYPES = {
    t: _SOME + encode_string(t) for t in ("m", "a", "v", "av", "i", "c", "tt", "k", "o")
}
_UUID_PREFIX = encode_long(36)
_PSEUDONYM_PREFIX = encode_long(32)
# Random bytes each request needs for its event ids (see `encode_batch`).
ENTROPY_BYTES = 12


class SchemaMismatch(RuntimeError):
    """The current QoETelemetrySample schema is not what the encoder writes."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """What every sample of one request shares: who received it, when, from where."""

    region: str  # the bridge's region
    received_ms: int
    country: str | None
    subdivision: str | None


class SampleEncoder:
    """Writes `qoe.telemetry` (key, value) records for validated samples."""

    def __init__(self, codec: AvroCodec) -> None:
        version = codec.store.current(SCHEMA_NAME)
        fields = tuple((f["name"], f["type"]) for f in version.schema["fields"])
        if fields != WRITTEN_FIELDS:
            raise SchemaMismatch(
                f"{SCHEMA_NAME} v{version.version} has fields {json.dumps(fields)}; the "
                "bridge's encoder writes another list: update services/bridge/records.py"
            )
        self._header = MAGIC + version.fingerprint

    def encode_batch(
        self,
        samples: Sequence[PlayerSample],
        provenance: Provenance,
        pseudonyms: EpochPseudonyms,
        entropy: bytes,
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) per sample, in order; key = session_ref (the topic's key).

        A sample with an id of its own gets an event_id derived from it (a resent sample
        keeps its id); the others get `<request prefix><counter>`: a version-8 UUID whose
        90 bits of prefix come from `entropy` (ENTROPY_BYTES random bytes per request,
        passed in so this stays pure) and whose last 32 bits count the samples.
        """
        if len(entropy) < ENTROPY_BYTES:
            raise ValueError(f"{ENTROPY_BYTES} bytes of entropy are needed")
        h = entropy[:ENTROPY_BYTES].hex()
        id_prefix = (
            _UUID_PREFIX
            + f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{_HEX_VARIANT[h[16]]}{h[17:20]}-{h[20:24]}".encode()
        )
        small, small_longs = _SMALL, _SMALL_LONGS
        timestamp = _TimestampWriter()
        middles: dict[tuple[str, str, str | None], bytes] = {}
        viewers: dict[str, bytes] = {}
        sessions: dict[str, tuple[bytes, bytes]] = {}
        # header, event_id prefix; occurred_at and region: shared by every record.
        shared_head = encode_long(provenance.received_ms) + encode_string(provenance.region)
        epoch = encode_string(pseudonyms.epoch)
        geo = encode_string(provenance.country or UNKNOWN_COUNTRY) + encode_string(
            provenance.subdivision or ""
        )
        default_region = encode_string(provenance.region)
        header = self._header
        records: list[tuple[bytes, bytes]] = []
        append = records.append
        for index, (
            sample_id, viewer, session, content, cdn, serving_region, sampled_at,
            bitrate, buffer, play, stalls, stalled, startup, exited, error,
            object_type, throughput, top_bitrate,
        ) in enumerate(samples):  # fmt: skip
            known_session = sessions.get(session)
            if known_session is None:
                ref = pseudonyms.session(session).encode()
                known_session = sessions[session] = (ref, _PSEUDONYM_PREFIX + ref)
            key, session_field = known_session
            viewer_field = viewers.get(viewer)
            if viewer_field is None:
                viewer_field = viewers[viewer] = (
                    _PSEUDONYM_PREFIX + pseudonyms.viewer(viewer).encode()
                )
            if sample_id is None:
                event_id = id_prefix + b"%08x" % index
            else:
                event_id = _UUID_PREFIX + pseudonyms.sample_event_id(session, sample_id).encode()
            # pseudonym_epoch .. subdivision: one run of bytes per (content, CDN, region).
            middle = middles.get((content, cdn, serving_region))
            if middle is None:
                middle = middles[(content, cdn, serving_region)] = b"".join(
                    (
                        epoch,
                        encode_string(content),
                        encode_string(cdn),
                        default_region if serving_region is None else encode_string(serving_region),
                        geo,
                    )
                )
            append(
                (
                    key,
                    b"".join(
                        (
                            header,
                            event_id,
                            shared_head,
                            session_field,
                            viewer_field,
                            middle,
                            timestamp(sampled_at),
                            small_longs[bitrate] if bitrate < small else encode_long(bitrate),
                            small_longs[buffer] if buffer < small else encode_long(buffer),
                            small_longs[play] if play < small else encode_long(play),
                            small_longs[stalls] if stalls < small else encode_long(stalls),
                            small_longs[stalled] if stalled < small else encode_long(stalled),
                            _NULL
                            if startup is None
                            else _SOME
                            + (small_longs[startup] if startup < small else encode_long(startup)),
                            _TRUE if exited else _FALSE,
                            _NULL if error is None else _SOME + encode_string(error),
                            _NULL
                            if object_type is None
                            else _OBJECT_TYPES.get(object_type)
                            or _SOME + encode_string(object_type),
                            _NULL if throughput is None else _SOME + encode_long(throughput),
                            _NULL if top_bitrate is None else _SOME + encode_long(top_bitrate),
                        )
                    ),
                )
            )
        return records
