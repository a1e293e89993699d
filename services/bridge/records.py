"""Validated samples to `qoe.telemetry` records: pseudonymised, geo-stamped, Avro-encoded.

A request becomes one `QoETelemetryBatch` record per partition its sessions hash to (the
murmur2 partition of each session_ref, as Kafka would pick it), so Kafka, the broker and
the agents pay per request rather than per sample, and each session stays on one
partition, in order. The bridge writes the Avro single-object encoding itself, in one
tight loop per request, instead of building event objects and dicts for fastavro: what
repeats within a request (region, epoch, geo, CDN and content names, small integers) is
encoded once. `BatchEncoder` refuses to start unless the current schema is exactly the
field list it writes, so a schema change cannot silently produce wrong bytes; tests
decode its output with the project's codec and with Apache `avro`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.bridge.pseudonyms import EpochPseudonyms
from services.bridge.samples import PlayerSample
from streams.codec import MAGIC, AvroCodec
from streams.events import QoETelemetryBatch
from streams.partitioning import partition_of

SCHEMA_NAME = QoETelemetryBatch.SCHEMA_NAME

# (field, Avro type) of each sample in the batch, in schema order.
WRITTEN_SAMPLE_FIELDS: tuple[tuple[str, Any], ...] = (
    ("event_id", "string"),
    ("session_ref", "string"),
    ("viewer_pseudonym", "string"),
    ("content_id", "string"),
    ("cdn", "string"),
    ("serving_region", "string"),
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
# (field, Avro type) of the batch in schema order: what `encode_batch` writes, byte for byte.
WRITTEN_FIELDS: tuple[tuple[str, Any], ...] = (
    ("event_id", "string"),
    ("occurred_at", "long"),
    ("region", "string"),
    ("partition_key", "string"),
    ("pseudonym_epoch", "string"),
    ("country", "string"),
    ("subdivision", "string"),
    ("samples", ("array", "QoEBatchSample", WRITTEN_SAMPLE_FIELDS)),
)
# Session partitions remembered (a player keeps its session for many requests).
PARTITION_MEMO_ENTRIES = 200_000


def _shape(fields: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """(name, type) per field, docs and defaults left out; arrays of records spelled out."""
    shape: list[tuple[str, Any]] = []
    for field in fields:
        kind = field["type"]
        if isinstance(kind, Mapping) and kind.get("type") == "array":
            items = kind["items"]
            if isinstance(items, Mapping) and items.get("type") == "record":
                kind = ("array", items["name"], _shape(items["fields"]))
        shape.append((field["name"], kind))
    return tuple(shape)


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
PSEUDONYM_BYTES = 32
_PSEUDONYM_PREFIX = encode_long(PSEUDONYM_BYTES)
# Random bytes each request needs for its event ids (see `encode_batch`).
ENTROPY_BYTES = 12


class SchemaMismatch(RuntimeError):
    """The current QoETelemetryBatch schema is not what the encoder writes."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """What every sample of one request shares: who received it, when, from where."""

    region: str  # the bridge's region
    received_ms: int
    country: str | None
    subdivision: str | None


# The last 32 bits of a batch's event id: above any sample counter (5,000 at most).
_BATCH_COUNTER = 0x80000000


class BatchEncoder:
    """Writes `qoe.telemetry` (key, value) records for validated samples: one batch per
    partition of a topic with `partitions` partitions."""

    def __init__(self, codec: AvroCodec, partitions: int) -> None:
        version = codec.store.current(SCHEMA_NAME)
        fields = _shape(version.schema["fields"])
        if fields != WRITTEN_FIELDS:
            raise SchemaMismatch(
                f"{SCHEMA_NAME} v{version.version} has fields {json.dumps(fields)}; the "
                "bridge's encoder writes another list: update services/bridge/records.py"
            )
        if partitions < 1:
            raise ValueError("a topic has at least one partition")
        self._header = MAGIC + version.fingerprint
        self._partitions = partitions
        self._partition_of: dict[bytes, int] = {}

    def _partition(self, session_ref: bytes) -> int:
        if len(self._partition_of) >= PARTITION_MEMO_ENTRIES:
            self._partition_of.clear()
        where = self._partition_of[session_ref] = partition_of(session_ref, self._partitions)
        return where

    def encode_batch(
        self,
        samples: Sequence[PlayerSample],
        provenance: Provenance,
        pseudonyms: EpochPseudonyms,
        entropy: bytes,
    ) -> list[tuple[bytes, bytes]]:
        """(key, value) per partition the samples' sessions hash to, in order of first
        appearance; samples keep their order within a batch. The key is the batch's
        `partition_key`: its first sample's session_ref.

        A sample with an id of its own gets an event_id derived from it (a resent sample
        keeps its id); the others get `<request prefix><counter>`: a version-8 UUID whose
        90 bits of prefix come from `entropy` (ENTROPY_BYTES random bytes per request,
        passed in so this stays pure) and whose last 32 bits count the samples. Batch
        event ids share the prefix and count from 2**31.
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
        places: dict[tuple[str, str, str | None], bytes] = {}
        viewers: dict[str, bytes] = {}
        # session id -> (the batch's samples, the session_ref field)
        sessions: dict[str, tuple[list[bytes], bytes]] = {}
        # partition -> (key, samples)
        batches: dict[int, tuple[bytes, list[bytes]]] = {}
        known_partitions = self._partition_of
        default_region = encode_string(provenance.region)
        for index, (
            sample_id, viewer, session, content, cdn, serving_region, sampled_at,
            bitrate, buffer, play, stalls, stalled, startup, exited, error,
            object_type, throughput, top_bitrate,
        ) in enumerate(samples):  # fmt: skip
            known_session = sessions.get(session)
            if known_session is None:
                ref = pseudonyms.session(session).encode()
                where = known_partitions.get(ref)
                if where is None:
                    where = self._partition(ref)
                batch = batches.get(where)
                if batch is None:
                    batch = batches[where] = (ref, [])
                known_session = sessions[session] = (batch[1], _PSEUDONYM_PREFIX + ref)
            items, session_field = known_session
            viewer_field = viewers.get(viewer)
            if viewer_field is None:
                viewer_field = viewers[viewer] = (
                    _PSEUDONYM_PREFIX + pseudonyms.viewer(viewer).encode()
                )
            if sample_id is None:
                event_id = id_prefix + b"%08x" % index
            else:
                event_id = _UUID_PREFIX + pseudonyms.sample_event_id(session, sample_id).encode()
            # content_id, cdn, serving_region: one run of bytes per (content, CDN, region).
            place = places.get((content, cdn, serving_region))
            if place is None:
                place = places[(content, cdn, serving_region)] = b"".join(
                    (
                        encode_string(content),
                        encode_string(cdn),
                        default_region if serving_region is None else encode_string(serving_region),
                    )
                )
            items.append(
                b"".join(
                    (
                        event_id,
                        session_field,
                        viewer_field,
                        place,
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
                        else _OBJECT_TYPES.get(object_type) or _SOME + encode_string(object_type),
                        _NULL if throughput is None else _SOME + encode_long(throughput),
                        _NULL if top_bitrate is None else _SOME + encode_long(top_bitrate),
                    )
                )
            )
        # occurred_at and region after the event id; epoch and geo after the key.
        received = encode_long(provenance.received_ms) + default_region
        shared_tail = (
            encode_string(pseudonyms.epoch)
            + encode_string(provenance.country or UNKNOWN_COUNTRY)
            + encode_string(provenance.subdivision or "")
        )
        header = self._header
        records: list[tuple[bytes, bytes]] = []
        for number, (key, items) in enumerate(batches.values()):
            value = b"".join(
                (
                    header,
                    id_prefix,
                    b"%08x" % (_BATCH_COUNTER + number),
                    received,
                    _PSEUDONYM_PREFIX if len(key) == PSEUDONYM_BYTES else encode_long(len(key)),
                    key,
                    shared_tail,
                    # One array block: its item count, the items, then the empty block.
                    encode_long(len(items)),
                    *items,
                    _NULL,
                )
            )
            records.append((key, value))
        return records
