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
)

UNKNOWN_COUNTRY = "--"


def encode_long(value: int) -> bytes:
    """Avro int/long: zig-zag, then little-endian base-128 varint."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


# Bitrates, buffer lengths and play times are mostly below this: a list index beats the loop.
_SMALL_LONGS = tuple(encode_long(n) for n in range(1 << 16))
_SMALL = len(_SMALL_LONGS)


def encode_string(value: str) -> bytes:
    raw = value.encode()
    return encode_long(len(raw)) + raw


_HEX_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_NULL = b"\x00"
_SOME = b"\x02"
_FALSE = b"\x00"
_TRUE = b"\x01"
_UUID_PREFIX = encode_long(36)
_PSEUDONYM_PREFIX = encode_long(32)


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

        entropy: 16 random bytes per sample for the event ids of samples without an id
        of their own (passed in so this stays pure and testable).
        """
        if len(entropy) < 16 * len(samples):
            raise ValueError("16 bytes of entropy per sample are needed")
        small, small_longs = _SMALL, _SMALL_LONGS
        strings: dict[str, bytes] = {}
        viewers: dict[str, str] = {}
        sessions: dict[str, str] = {}
        occurred = encode_long(provenance.received_ms)
        # occurred_at, region: shared by every record of the request.
        shared_head = occurred + encode_string(provenance.region)
        epoch = encode_string(pseudonyms.epoch)
        geo = encode_string(provenance.country or UNKNOWN_COUNTRY) + encode_string(
            provenance.subdivision or ""
        )
        default_region = encode_string(provenance.region)
        random_hex = entropy.hex()
        header = self._header
        records: list[tuple[bytes, bytes]] = []
        append = records.append
        for index, sample in enumerate(samples):
            session_ref = sessions.get(sample.session)
            if session_ref is None:
                session_ref = sessions[sample.session] = pseudonyms.session(sample.session)
            viewer = viewers.get(sample.viewer)
            if viewer is None:
                viewer = viewers[sample.viewer] = pseudonyms.viewer(sample.viewer)
            if sample.sample_id is None:
                h = random_hex[32 * index : 32 * index + 32]
                event_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_HEX_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
            else:
                event_id = pseudonyms.sample_event_id(sample.session, sample.sample_id)
            content = strings.get(sample.content)
            if content is None:
                content = strings[sample.content] = encode_string(sample.content)
            cdn = strings.get(sample.cdn)
            if cdn is None:
                cdn = strings[sample.cdn] = encode_string(sample.cdn)
            if sample.serving_region is None:
                serving = default_region
            else:
                serving = strings.get(sample.serving_region) or encode_string(sample.serving_region)
            bitrate, buffer, play = sample.bitrate_kbps, sample.buffer_ms, sample.play_ms
            stalls, stalled = sample.rebuffer_count, sample.rebuffer_ms
            startup, error = sample.startup_ms, sample.error_code
            append(
                (
                    session_ref.encode(),
                    b"".join(
                        (
                            header,
                            _UUID_PREFIX,
                            event_id.encode(),
                            shared_head,
                            _PSEUDONYM_PREFIX,
                            session_ref.encode(),
                            _PSEUDONYM_PREFIX,
                            viewer.encode(),
                            epoch,
                            content,
                            cdn,
                            serving,
                            geo,
                            encode_long(sample.sampled_at),
                            small_longs[bitrate] if bitrate < small else encode_long(bitrate),
                            small_longs[buffer] if buffer < small else encode_long(buffer),
                            small_longs[play] if play < small else encode_long(play),
                            small_longs[stalls] if stalls < small else encode_long(stalls),
                            small_longs[stalled] if stalled < small else encode_long(stalled),
                            _NULL
                            if startup is None
                            else _SOME
                            + (small_longs[startup] if startup < small else encode_long(startup)),
                            _TRUE if sample.exited_before_start else _FALSE,
                            _NULL if error is None else _SOME + encode_string(error),
                        )
                    ),
                )
            )
        return records
