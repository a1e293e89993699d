"""`qoe.telemetry` records: batches of samples, and the single samples analytics see.

The bridge writes one `QoETelemetryBatch` per request and partition: what the request's
samples share (bridge region, time received, pseudonym epoch, coarse geo) once, then the
samples. Every reader works on single `QoETelemetrySample`s, the batch's samples joined
with what they share; the functions here convert both ways, without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.codec import AvroCodec
from streams.errors import DecodeError
from streams.events import QoEBatchSample, QoETelemetryBatch, QoETelemetrySample
from streams.meta import new_event_id
from streams.partitioning import partition_of

# Batch fields every sample of the batch shares, by their name in `QoETelemetrySample`.
SHARED_FIELDS = ("occurred_at", "region", "pseudonym_epoch", "country", "subdivision")


def samples_of_record(batch: Mapping[str, Any]) -> list[QoETelemetrySample]:
    """The samples of a decoded batch record (a `QoETelemetryBatch` as a mapping)."""
    shared = {name: batch[name] for name in SHARED_FIELDS}
    return [QoETelemetrySample(**item, **shared) for item in batch["samples"]]


def samples_of(batch: QoETelemetryBatch) -> list[QoETelemetrySample]:
    """The samples of a batch, each joined with what the batch shares."""
    return samples_of_record(batch.to_avro())


def telemetry_samples(event: object) -> list[QoETelemetrySample] | None:
    """The samples a decoded `qoe.telemetry` event holds; None if it holds none.

    A single `QoETelemetrySample` (what the topic carried before batches, still readable
    while such records are retained) counts as a batch of one.
    """
    if isinstance(event, QoETelemetryBatch):
        return samples_of(event)
    if isinstance(event, QoETelemetrySample):
        return [event]
    return None


def decode_batch(codec: AvroCodec, data: bytes) -> dict[str, Any]:
    """One `qoe.telemetry` record value as a batch record (`occurred_at`, the shared
    fields, `samples`), without building an event object per sample.

    A single `QoETelemetrySample` reads as a batch of one. Raises DecodeError like the
    codec, or with reason wrong-event-type.
    """
    version, record = codec.decode_record(data)
    if version.name == QoETelemetryBatch.SCHEMA_NAME:
        return record
    if version.name == QoETelemetrySample.SCHEMA_NAME:
        return {**record, "samples": [record]}
    raise DecodeError(
        f"expected {QoETelemetryBatch.SCHEMA_NAME}, got {version.name}", reason="wrong-event-type"
    )


def batches_of(samples: Iterable[QoETelemetrySample], partitions: int) -> list[QoETelemetryBatch]:
    """Samples grouped the way the bridge groups them: per shared fields and partition.

    Samples keep their order within a batch; a batch's key (`partition_key`, the first
    sample's session_ref) lands on the partition every one of its sessions hashes to.
    For tests, benches and replays that produce samples without the bridge.
    """
    groups: dict[tuple[object, ...], list[QoETelemetrySample]] = {}
    for sample in samples:
        where = partition_of(sample.session_ref.encode(), partitions)
        shared = tuple(getattr(sample, name) for name in SHARED_FIELDS)
        groups.setdefault((*shared, where), []).append(sample)
    return [batch_of(group) for group in groups.values()]


def batch_of(samples: Sequence[QoETelemetrySample]) -> QoETelemetryBatch:
    """One batch of samples that share `SHARED_FIELDS` (ValueError otherwise)."""
    if not samples:
        raise ValueError("a batch needs at least one sample")
    first = samples[0]
    shared = {name: getattr(first, name) for name in SHARED_FIELDS}
    items = []
    for sample in samples:
        record = sample.to_avro()
        if any(record.pop(name) != value for name, value in shared.items()):
            raise ValueError(f"sample {sample.event_id} does not share {SHARED_FIELDS}")
        items.append(QoEBatchSample(**record))
    return QoETelemetryBatch(
        event_id=new_event_id(),
        partition_key=first.session_ref,
        samples=tuple(items),
        **shared,
    )
