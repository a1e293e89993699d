"""`qoe.telemetry` records: blocks of samples stored by column, and the single samples
analytics see.

The bridge writes one `QoETelemetryBlock` per request and partition: what the request's
samples share (bridge region, time received, pseudonym epoch, coarse geo) once, the
distinct strings once, and every per-sample value in a packed column (`bytes`, one
fixed-width little-endian value per sample). A reader takes a whole column with one
fastavro call and one `memoryview.cast` instead of decoding a record per sample: for the
QoE agent, decoding was half of its time with an array of records, ~0.7 µs a sample now.

`SampleBlock` is a decoded block, columns ready to fold; `SampleBlock.samples()` is the
row view (`QoETelemetrySample`) the ClickHouse table and the privacy scanner read. Older
records of the topic (`QoETelemetryBatch`, an array of records; `QoETelemetrySample`, one
sample) decode to the same `SampleBlock` while they are retained. Everything here is pure.
"""

from __future__ import annotations

import sys
import uuid
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from streams.codec import AvroCodec
from streams.errors import DecodeError
from streams.events import (
    QoEBlockContext,
    QoETelemetryBatch,
    QoETelemetryBlock,
    QoETelemetrySample,
)
from streams.meta import new_event_id
from streams.partitioning import partition_of

# Block fields every sample of the block shares, by their name in `QoETelemetrySample`.
SHARED_FIELDS = ("occurred_at", "region", "pseudonym_epoch", "country", "subdivision")
# Packed int32 columns, in schema order; -1 marks "not reported" where the sample field is
# optional (startup_ms, throughput_kbps, top_bitrate_kbps) and "none" in index columns.
INT32_COLUMNS = (
    "context",
    "bitrate_kbps",
    "buffer_ms",
    "play_ms",
    "rebuffer_count",
    "rebuffer_ms",
    "startup_ms",
    "error_code",
    "object_type",
    "throughput_kbps",
    "top_bitrate_kbps",
)
NONE = -1
EVENT_ID_BYTES = 16
LITTLE_ENDIAN = sys.byteorder == "little"
if array("i").itemsize != 4 or array("q").itemsize != 8:  # pragma: no cover - exotic C ABI
    raise ImportError("this platform's C int is not 32 bits or its long long not 64")

# A sample's context, in `QoEBlockContext` order: (session_ref, viewer_pseudonym,
# content_id, cdn, serving_region).
Context = tuple[str, str, str, str, str]


def _pack(code: Literal["i", "q"], values: Iterable[int]) -> bytes:
    """Little-endian int32 ("i") or int64 ("q") per value (OverflowError for one out of
    range)."""
    packed = array(code, values)
    if not LITTLE_ENDIAN:  # pragma: no cover - big-endian hosts
        packed.byteswap()
    return packed.tobytes()


def pack_int32(values: Iterable[int]) -> bytes:
    return _pack("i", values)


def pack_int64(values: Iterable[int]) -> bytes:
    return _pack("q", values)


def _unpack(raw: bytes, code: Literal["i", "q"], count: int, field: str) -> Sequence[int]:
    width = 8 if code == "q" else 4
    if len(raw) != width * count:
        raise DecodeError(
            f"column {field} holds {len(raw)} bytes for {count} samples of {width}",
            reason="malformed-block",
        )
    if LITTLE_ENDIAN:
        return memoryview(raw).cast(code)
    values = array(code, raw)  # pragma: no cover - big-endian hosts
    values.byteswap()  # pragma: no cover
    return values  # pragma: no cover


def uuid_bytes(text: str) -> bytes:
    """The 16 bytes of a UUID given in its text form."""
    return uuid.UUID(text).bytes


def uuid_text(raw: bytes) -> str:
    """The text form of a UUID given as its 16 bytes."""
    return str(uuid.UUID(bytes=raw))


@dataclass(frozen=True, slots=True)
class SampleBlock:
    """A decoded `qoe.telemetry` record: what its samples share, and their columns."""

    event_id: str
    occurred_at: int
    region: str
    partition_key: str
    pseudonym_epoch: str
    country: str
    subdivision: str
    contexts: tuple[Context, ...]
    context: Sequence[int]
    event_ids: bytes
    sampled_at: Sequence[int]
    bitrate_kbps: Sequence[int]
    buffer_ms: Sequence[int]
    play_ms: Sequence[int]
    rebuffer_count: Sequence[int]
    rebuffer_ms: Sequence[int]
    startup_ms: Sequence[int]
    exited_before_start: bytes
    error_codes: tuple[str, ...]
    error_code: Sequence[int]
    object_types: tuple[str, ...]
    object_type: Sequence[int]
    throughput_kbps: Sequence[int]
    top_bitrate_kbps: Sequence[int]

    def __len__(self) -> int:
        return len(self.context)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SampleBlock:
        """A decoded `QoETelemetryBlock` record, its columns checked: DecodeError with
        reason malformed-block if a column's length or an index is off."""
        count = record["sample_count"]
        contexts = tuple(
            (
                c["session_ref"],
                c["viewer_pseudonym"],
                c["content_id"],
                c["cdn"],
                c["serving_region"],
            )
            for c in record["contexts"]
        )
        columns = {name: _unpack(record[name], "i", count, name) for name in INT32_COLUMNS}
        for name, table in (
            ("context", contexts),
            ("error_code", record["error_codes"]),
            ("object_type", record["object_types"]),
        ):
            values = columns[name]
            if count and not (NONE if name != "context" else 0) <= min(values):
                raise DecodeError(f"column {name} has a negative index", reason="malformed-block")
            if count and max(values) >= len(table):
                raise DecodeError(
                    f"column {name} points past its {len(table)} entries", reason="malformed-block"
                )
        if len(record["event_ids"]) != EVENT_ID_BYTES * count:
            raise DecodeError("event_ids is not 16 bytes a sample", reason="malformed-block")
        if len(record["exited_before_start"]) != count:
            raise DecodeError("exited_before_start: not a byte a sample", reason="malformed-block")
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            partition_key=record["partition_key"],
            pseudonym_epoch=record["pseudonym_epoch"],
            country=record["country"],
            subdivision=record["subdivision"],
            contexts=contexts,
            event_ids=record["event_ids"],
            sampled_at=_unpack(record["sampled_at"], "q", count, "sampled_at"),
            exited_before_start=record["exited_before_start"],
            error_codes=tuple(record["error_codes"]),
            object_types=tuple(record["object_types"]),
            **columns,
        )

    def event_id_of(self, index: int) -> str:
        start = index * EVENT_ID_BYTES
        return uuid_text(self.event_ids[start : start + EVENT_ID_BYTES])

    def samples(self) -> list[QoETelemetrySample]:
        """The row view: each sample joined with what the block shares."""
        out = []
        for index, at in enumerate(self.sampled_at):
            session, viewer, content, cdn, serving = self.contexts[self.context[index]]
            error, kind = self.error_code[index], self.object_type[index]
            out.append(
                QoETelemetrySample(
                    event_id=self.event_id_of(index),
                    occurred_at=self.occurred_at,
                    region=self.region,
                    session_ref=session,
                    viewer_pseudonym=viewer,
                    pseudonym_epoch=self.pseudonym_epoch,
                    content_id=content,
                    cdn=cdn,
                    serving_region=serving,
                    country=self.country,
                    subdivision=self.subdivision,
                    sampled_at=at,
                    bitrate_kbps=self.bitrate_kbps[index],
                    buffer_ms=self.buffer_ms[index],
                    play_ms=self.play_ms[index],
                    rebuffer_count=self.rebuffer_count[index],
                    rebuffer_ms=self.rebuffer_ms[index],
                    startup_ms=_optional(self.startup_ms[index]),
                    exited_before_start=bool(self.exited_before_start[index]),
                    error_code=None if error == NONE else self.error_codes[error],
                    object_type=None if kind == NONE else self.object_types[kind],
                    throughput_kbps=_optional(self.throughput_kbps[index]),
                    top_bitrate_kbps=_optional(self.top_bitrate_kbps[index]),
                )
            )
        return out


def _optional(value: int) -> int | None:
    return None if value == NONE else value


def _indexed(values: Sequence[str | None], table: dict[str, int]) -> list[int]:
    """Each value's index in table (added on first sight), NONE for None."""
    return [NONE if v is None else table.setdefault(v, len(table)) for v in values]


def _none_as_minus_one(values: Sequence[int | None]) -> Sequence[int]:
    if None not in values:
        return values  # type: ignore[return-value]  # no None in it: ints only
    return [NONE if v is None else v for v in values]


def pack_block(
    *,
    event_id: str,
    occurred_at: int,
    region: str,
    partition_key: str,
    pseudonym_epoch: str,
    country: str,
    subdivision: str,
    contexts: Iterable[Context],
    context: Sequence[int],
    event_ids: bytes,
    sampled_at: Sequence[int],
    bitrate_kbps: Sequence[int],
    buffer_ms: Sequence[int],
    play_ms: Sequence[int],
    rebuffer_count: Sequence[int],
    rebuffer_ms: Sequence[int],
    startup_ms: Sequence[int | None],
    exited_before_start: Sequence[bool],
    error_code: Sequence[str | None],
    object_type: Sequence[str | None],
    throughput_kbps: Sequence[int | None],
    top_bitrate_kbps: Sequence[int | None],
) -> QoETelemetryBlock:
    """A block from its columns, one value per sample each (None where a sample has no
    value), `contexts` in the order `context` indexes them and `event_ids` 16 bytes a
    sample. OverflowError for a value that does not fit its column."""
    error_codes: dict[str, int] = {}
    object_types: dict[str, int] = {}
    return QoETelemetryBlock(
        event_id=event_id,
        occurred_at=occurred_at,
        region=region,
        partition_key=partition_key,
        pseudonym_epoch=pseudonym_epoch,
        country=country,
        subdivision=subdivision,
        sample_count=len(context),
        contexts=tuple(
            QoEBlockContext(
                session_ref=session,
                viewer_pseudonym=viewer,
                content_id=content,
                cdn=cdn,
                serving_region=serving,
            )
            for session, viewer, content, cdn, serving in contexts
        ),
        context=pack_int32(context),
        event_ids=event_ids,
        sampled_at=pack_int64(sampled_at),
        bitrate_kbps=pack_int32(bitrate_kbps),
        buffer_ms=pack_int32(buffer_ms),
        play_ms=pack_int32(play_ms),
        rebuffer_count=pack_int32(rebuffer_count),
        rebuffer_ms=pack_int32(rebuffer_ms),
        startup_ms=pack_int32(_none_as_minus_one(startup_ms)),
        exited_before_start=bytes(exited_before_start),
        error_code=pack_int32(_indexed(error_code, error_codes)),
        error_codes=tuple(error_codes),
        object_type=pack_int32(_indexed(object_type, object_types)),
        object_types=tuple(object_types),
        throughput_kbps=pack_int32(_none_as_minus_one(throughput_kbps)),
        top_bitrate_kbps=pack_int32(_none_as_minus_one(top_bitrate_kbps)),
    )


def block_of(samples: Sequence[QoETelemetrySample]) -> QoETelemetryBlock:
    """One block of samples that share `SHARED_FIELDS` (ValueError otherwise)."""
    if not samples:
        raise ValueError("a block needs at least one sample")
    first = samples[0]
    shared = {name: getattr(first, name) for name in SHARED_FIELDS}
    for sample in samples:
        if any(getattr(sample, name) != value for name, value in shared.items()):
            raise ValueError(f"sample {sample.event_id} does not share {SHARED_FIELDS}")
    contexts: dict[Context, int] = {}
    context = [
        contexts.setdefault(
            (s.session_ref, s.viewer_pseudonym, s.content_id, s.cdn, s.serving_region),
            len(contexts),
        )
        for s in samples
    ]
    return pack_block(
        event_id=new_event_id(),
        partition_key=first.session_ref,
        contexts=contexts,
        context=context,
        event_ids=b"".join(uuid_bytes(s.event_id) for s in samples),
        occurred_at=first.occurred_at,
        region=first.region,
        pseudonym_epoch=first.pseudonym_epoch,
        country=first.country,
        subdivision=first.subdivision,
        sampled_at=[s.sampled_at for s in samples],
        bitrate_kbps=[s.bitrate_kbps for s in samples],
        buffer_ms=[s.buffer_ms for s in samples],
        play_ms=[s.play_ms for s in samples],
        rebuffer_count=[s.rebuffer_count for s in samples],
        rebuffer_ms=[s.rebuffer_ms for s in samples],
        startup_ms=[s.startup_ms for s in samples],
        exited_before_start=[s.exited_before_start for s in samples],
        error_code=[s.error_code for s in samples],
        object_type=[s.object_type for s in samples],
        throughput_kbps=[s.throughput_kbps for s in samples],
        top_bitrate_kbps=[s.top_bitrate_kbps for s in samples],
    )


def blocks_of(samples: Iterable[QoETelemetrySample], partitions: int) -> list[QoETelemetryBlock]:
    """Samples grouped the way the bridge groups them: per shared fields and partition.

    Samples keep their order within a block; a block's key (`partition_key`, the first
    sample's session_ref) lands on the partition every one of its sessions hashes to.
    For tests, benches and replays that produce samples without the bridge.
    """
    groups: dict[tuple[object, ...], list[QoETelemetrySample]] = {}
    for sample in samples:
        where = partition_of(sample.session_ref.encode(), partitions)
        shared = tuple(getattr(sample, name) for name in SHARED_FIELDS)
        groups.setdefault((*shared, where), []).append(sample)
    return [block_of(group) for group in groups.values()]


def decode_block(codec: AvroCodec, data: bytes) -> SampleBlock:
    """One `qoe.telemetry` record value as a decoded block.

    Older records read as blocks too: a `QoETelemetryBatch` (its samples joined with what
    it shares) and a single `QoETelemetrySample`. Raises DecodeError like the codec, with
    reason malformed-block for inconsistent columns, or wrong-event-type.
    """
    version, record = codec.decode_record(data)
    name = version.name
    try:
        if name == QoETelemetryBlock.SCHEMA_NAME:
            return SampleBlock.from_record(record)
        if name in (QoETelemetryBatch.SCHEMA_NAME, QoETelemetrySample.SCHEMA_NAME):
            return SampleBlock.from_record(block_of(samples_of_record(record)).to_avro())
    except (OverflowError, ValueError) as exc:  # an id that is no UUID, a value past int32
        raise DecodeError(f"{name}: {exc}", reason="malformed-block") from exc
    raise DecodeError(
        f"expected {QoETelemetryBlock.SCHEMA_NAME}, got {name}", reason="wrong-event-type"
    )


def samples_of_record(record: Mapping[str, Any]) -> list[QoETelemetrySample]:
    """The samples of a decoded `qoe.telemetry` record given as a mapping: a block's, an
    older batch's (joined with what it shares), or a single sample. DecodeError with
    reason malformed-block if a block's columns do not add up."""
    if "sample_count" in record:
        return SampleBlock.from_record(record).samples()
    if "samples" in record:
        shared = {name: record[name] for name in SHARED_FIELDS}
        return [QoETelemetrySample.from_avro({**item, **shared}) for item in record["samples"]]
    return [QoETelemetrySample.from_avro(record)]


def telemetry_samples(event: object) -> list[QoETelemetrySample] | None:
    """The samples a decoded `qoe.telemetry` event holds (a block, an older batch or a
    single sample); None if it holds none."""
    if isinstance(event, QoETelemetryBlock | QoETelemetryBatch):
        return samples_of_record(event.to_avro())
    if isinstance(event, QoETelemetrySample):
        return [event]
    return None
