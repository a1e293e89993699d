"""Event dataclasses, generated from schemas/*.avsc (`liveward schemas generate`)."""

# Generated file: edit the .avsc files and regenerate; a unit test fails if this drifts.

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class IngestRole(StrEnum):
    INGEST = "INGEST"
    PACKAGER = "PACKAGER"
    ORIGIN = "ORIGIN"


class IngestStatus(StrEnum):
    OK = "OK"
    DEGRADED = "DEGRADED"
    FAILING = "FAILING"


class LicenseDecision(StrEnum):
    GRANTED = "GRANTED"
    REFUSED = "REFUSED"


class OperatorAction(StrEnum):
    DRAIN = "DRAIN"
    RESTORE = "RESTORE"


class RevocationScope(StrEnum):
    TOKEN = "TOKEN"
    SESSION = "SESSION"
    DEVICE = "DEVICE"
    VIEWER = "VIEWER"


class UseDecision(StrEnum):
    ALLOWED = "ALLOWED"
    DENIED = "DENIED"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A record a worker could not process, with the reason and the original bytes."""

    SCHEMA_NAME: ClassVar[str] = "liveward.DeadLetter"
    event_id: str
    occurred_at: int
    region: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_key: bytes | None = None
    original_value: bytes | None = None
    reason_code: str
    reason_detail: str
    consumer: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "original_key": self.original_key,
            "original_value": self.original_value,
            "reason_code": self.reason_code,
            "reason_detail": self.reason_detail,
            "consumer": self.consumer,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> DeadLetter:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            source_topic=record["source_topic"],
            source_partition=record["source_partition"],
            source_offset=record["source_offset"],
            original_key=record["original_key"],
            original_value=record["original_value"],
            reason_code=record["reason_code"],
            reason_detail=record["reason_detail"],
            consumer=record["consumer"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Evidence"""

    SCHEMA_NAME: ClassVar[str] = "liveward.Evidence"
    metric: str
    value: float
    threshold: float

    def to_avro(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Evidence:
        return cls(
            metric=record["metric"],
            value=record["value"],
            threshold=record["threshold"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverDecision:
    """The control plane moved traffic away from (or back to) a region or CDN."""

    SCHEMA_NAME: ClassVar[str] = "liveward.FailoverDecision"
    event_id: str
    occurred_at: int
    region: str
    decision_id: str
    content_id: str
    from_pathway: str
    to_pathway: str
    reason: str
    evidence: tuple[Evidence, ...]
    decided_at: int
    operator: bool = False

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "decision_id": self.decision_id,
            "content_id": self.content_id,
            "from_pathway": self.from_pathway,
            "to_pathway": self.to_pathway,
            "reason": self.reason,
            "evidence": [item.to_avro() for item in self.evidence],
            "decided_at": self.decided_at,
            "operator": self.operator,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> FailoverDecision:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            decision_id=record["decision_id"],
            content_id=record["content_id"],
            from_pathway=record["from_pathway"],
            to_pathway=record["to_pathway"],
            reason=record["reason"],
            evidence=tuple(Evidence.from_avro(item) for item in record["evidence"]),
            decided_at=record["decided_at"],
            operator=record["operator"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestHealth:
    """A heartbeat from an ingest point or packager, sent every second."""

    SCHEMA_NAME: ClassVar[str] = "liveward.IngestHealth"
    event_id: str
    occurred_at: int
    region: str
    source_id: str
    role: IngestRole
    content_id: str
    beat_seq: int
    last_segment_seq: int
    last_segment_at: int
    status: IngestStatus
    input_bitrate_kbps: int = 0

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "source_id": self.source_id,
            "role": self.role.value,
            "content_id": self.content_id,
            "beat_seq": self.beat_seq,
            "last_segment_seq": self.last_segment_seq,
            "last_segment_at": self.last_segment_at,
            "status": self.status.value,
            "input_bitrate_kbps": self.input_bitrate_kbps,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> IngestHealth:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            source_id=record["source_id"],
            role=IngestRole(record["role"]),
            content_id=record["content_id"],
            beat_seq=record["beat_seq"],
            last_segment_seq=record["last_segment_seq"],
            last_segment_at=record["last_segment_at"],
            status=IngestStatus(record["status"]),
            input_bitrate_kbps=record["input_bitrate_kbps"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """WrappedKey"""

    SCHEMA_NAME: ClassVar[str] = "liveward.WrappedKey"
    region: str
    kek_id: str
    wrapped_key: bytes

    def to_avro(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "kek_id": self.kek_id,
            "wrapped_key": self.wrapped_key,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> WrappedKey:
        return cls(
            region=record["region"],
            kek_id=record["kek_id"],
            wrapped_key=record["wrapped_key"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyEpoch:
    """A new epoch master key, wrapped under every region's KEK; key epoch_id, compacted."""

    SCHEMA_NAME: ClassVar[str] = "liveward.KeyEpoch"
    event_id: str
    occurred_at: int
    region: str
    epoch_id: str
    started_at: int
    period_seconds: int
    emergency: bool
    wrapped_keys: tuple[WrappedKey, ...]

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "epoch_id": self.epoch_id,
            "started_at": self.started_at,
            "period_seconds": self.period_seconds,
            "emergency": self.emergency,
            "wrapped_keys": [item.to_avro() for item in self.wrapped_keys],
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> KeyEpoch:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            epoch_id=record["epoch_id"],
            started_at=record["started_at"],
            period_seconds=record["period_seconds"],
            emergency=record["emergency"],
            wrapped_keys=tuple(WrappedKey.from_avro(item) for item in record["wrapped_keys"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotated:
    """A content key period began; carries no key material."""

    SCHEMA_NAME: ClassVar[str] = "liveward.KeyRotated"
    event_id: str
    occurred_at: int
    region: str
    content_id: str
    period: int
    key_id: str
    epoch_id: str
    period_start: int
    period_end: int

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "content_id": self.content_id,
            "period": self.period,
            "key_id": self.key_id,
            "epoch_id": self.epoch_id,
            "period_start": self.period_start,
            "period_end": self.period_end,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> KeyRotated:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            content_id=record["content_id"],
            period=record["period"],
            key_id=record["key_id"],
            epoch_id=record["epoch_id"],
            period_start=record["period_start"],
            period_end=record["period_end"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseIssued:
    """A license request was answered; one record of the tamper-evident license log."""

    SCHEMA_NAME: ClassVar[str] = "liveward.LicenseIssued"
    event_id: str
    occurred_at: int
    region: str
    license_id: str
    viewer_ref: str
    session_id: str
    content_id: str
    key_ids: tuple[str, ...]
    protocol: str
    decision: LicenseDecision
    reason: str
    latency_us: int

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "license_id": self.license_id,
            "viewer_ref": self.viewer_ref,
            "session_id": self.session_id,
            "content_id": self.content_id,
            "key_ids": list(self.key_ids),
            "protocol": self.protocol,
            "decision": self.decision.value,
            "reason": self.reason,
            "latency_us": self.latency_us,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> LicenseIssued:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            license_id=record["license_id"],
            viewer_ref=record["viewer_ref"],
            session_id=record["session_id"],
            content_id=record["content_id"],
            key_ids=tuple(record["key_ids"]),
            protocol=record["protocol"],
            decision=LicenseDecision(record["decision"]),
            reason=record["reason"],
            latency_us=record["latency_us"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorCommand:
    """An operator asked to drain traffic from a region or pathway, or to restore it."""

    SCHEMA_NAME: ClassVar[str] = "liveward.OperatorCommand"
    event_id: str
    occurred_at: int
    region: str
    command_id: str
    action: OperatorAction
    target: str
    operator: str
    reason: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "command_id": self.command_id,
            "action": self.action.value,
            "target": self.target,
            "operator": self.operator,
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> OperatorCommand:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            command_id=record["command_id"],
            action=OperatorAction(record["action"]),
            target=record["target"],
            operator=record["operator"],
            reason=record["reason"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorCommandOutcome:
    """What the control plane did with an operator command: applied, no-op, or refused."""

    SCHEMA_NAME: ClassVar[str] = "liveward.OperatorCommandOutcome"
    event_id: str
    occurred_at: int
    region: str
    command_id: str
    accepted: bool
    reason: str
    detail: str
    decision_ids: tuple[str, ...]

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "command_id": self.command_id,
            "accepted": self.accepted,
            "reason": self.reason,
            "detail": self.detail,
            "decision_ids": list(self.decision_ids),
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> OperatorCommandOutcome:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            command_id=record["command_id"],
            accepted=record["accepted"],
            reason=record["reason"],
            detail=record["detail"],
            decision_ids=tuple(record["decision_ids"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PackagerManifestState:
    """The live playlist state a packager publishes; key (content, region), compacted."""

    SCHEMA_NAME: ClassVar[str] = "liveward.PackagerManifestState"
    event_id: str
    occurred_at: int
    region: str
    content_id: str
    packager_id: str
    media_sequence: int
    last_segment_seq: int
    discontinuity_sequence: int
    target_duration_ms: int
    segment_count: int
    key_period: int = -1

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "content_id": self.content_id,
            "packager_id": self.packager_id,
            "media_sequence": self.media_sequence,
            "last_segment_seq": self.last_segment_seq,
            "discontinuity_sequence": self.discontinuity_sequence,
            "target_duration_ms": self.target_duration_ms,
            "segment_count": self.segment_count,
            "key_period": self.key_period,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> PackagerManifestState:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            content_id=record["content_id"],
            packager_id=record["packager_id"],
            media_sequence=record["media_sequence"],
            last_segment_seq=record["last_segment_seq"],
            discontinuity_sequence=record["discontinuity_sequence"],
            target_duration_ms=record["target_duration_ms"],
            segment_count=record["segment_count"],
            key_period=record["key_period"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QoEAggregate:
    """A tumbling-window QoE aggregate per (region, CDN, content) with a k-anonymity floor."""

    SCHEMA_NAME: ClassVar[str] = "liveward.QoEAggregate"
    event_id: str
    occurred_at: int
    region: str
    window_start: int
    window_end: int
    serving_region: str
    cdn: str
    content_id: str
    sessions: int
    viewers: int
    samples: int
    rebuffer_ratio: float
    video_start_ms_p50: float | None = None
    exits_before_start: int
    error_rate: float
    bitrate_p50_kbps: float
    bitrate_p95_kbps: float
    late_samples: int = 0
    play_ms: int = 0
    rebuffer_ms: int = 0
    suppressed_samples: int = 0
    merged_groups: int = 0

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "serving_region": self.serving_region,
            "cdn": self.cdn,
            "content_id": self.content_id,
            "sessions": self.sessions,
            "viewers": self.viewers,
            "samples": self.samples,
            "rebuffer_ratio": self.rebuffer_ratio,
            "video_start_ms_p50": self.video_start_ms_p50,
            "exits_before_start": self.exits_before_start,
            "error_rate": self.error_rate,
            "bitrate_p50_kbps": self.bitrate_p50_kbps,
            "bitrate_p95_kbps": self.bitrate_p95_kbps,
            "late_samples": self.late_samples,
            "play_ms": self.play_ms,
            "rebuffer_ms": self.rebuffer_ms,
            "suppressed_samples": self.suppressed_samples,
            "merged_groups": self.merged_groups,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> QoEAggregate:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            window_start=record["window_start"],
            window_end=record["window_end"],
            serving_region=record["serving_region"],
            cdn=record["cdn"],
            content_id=record["content_id"],
            sessions=record["sessions"],
            viewers=record["viewers"],
            samples=record["samples"],
            rebuffer_ratio=record["rebuffer_ratio"],
            video_start_ms_p50=record["video_start_ms_p50"],
            exits_before_start=record["exits_before_start"],
            error_rate=record["error_rate"],
            bitrate_p50_kbps=record["bitrate_p50_kbps"],
            bitrate_p95_kbps=record["bitrate_p95_kbps"],
            late_samples=record["late_samples"],
            play_ms=record["play_ms"],
            rebuffer_ms=record["rebuffer_ms"],
            suppressed_samples=record["suppressed_samples"],
            merged_groups=record["merged_groups"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QoEBatchSample:
    """One sample of a batch: what is not shared with the others."""

    SCHEMA_NAME: ClassVar[str] = "liveward.QoEBatchSample"
    event_id: str
    session_ref: str
    viewer_pseudonym: str
    content_id: str
    cdn: str
    serving_region: str
    sampled_at: int
    bitrate_kbps: int
    buffer_ms: int
    play_ms: int
    rebuffer_count: int
    rebuffer_ms: int
    startup_ms: int | None = None
    exited_before_start: bool = False
    error_code: str | None = None
    object_type: str | None = None
    throughput_kbps: int | None = None
    top_bitrate_kbps: int | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "session_ref": self.session_ref,
            "viewer_pseudonym": self.viewer_pseudonym,
            "content_id": self.content_id,
            "cdn": self.cdn,
            "serving_region": self.serving_region,
            "sampled_at": self.sampled_at,
            "bitrate_kbps": self.bitrate_kbps,
            "buffer_ms": self.buffer_ms,
            "play_ms": self.play_ms,
            "rebuffer_count": self.rebuffer_count,
            "rebuffer_ms": self.rebuffer_ms,
            "startup_ms": self.startup_ms,
            "exited_before_start": self.exited_before_start,
            "error_code": self.error_code,
            "object_type": self.object_type,
            "throughput_kbps": self.throughput_kbps,
            "top_bitrate_kbps": self.top_bitrate_kbps,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> QoEBatchSample:
        return cls(
            event_id=record["event_id"],
            session_ref=record["session_ref"],
            viewer_pseudonym=record["viewer_pseudonym"],
            content_id=record["content_id"],
            cdn=record["cdn"],
            serving_region=record["serving_region"],
            sampled_at=record["sampled_at"],
            bitrate_kbps=record["bitrate_kbps"],
            buffer_ms=record["buffer_ms"],
            play_ms=record["play_ms"],
            rebuffer_count=record["rebuffer_count"],
            rebuffer_ms=record["rebuffer_ms"],
            startup_ms=record["startup_ms"],
            exited_before_start=record["exited_before_start"],
            error_code=record["error_code"],
            object_type=record["object_type"],
            throughput_kbps=record["throughput_kbps"],
            top_bitrate_kbps=record["top_bitrate_kbps"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QoETelemetryBatch:
    """One bridge request's samples of one partition; key partition_key."""

    SCHEMA_NAME: ClassVar[str] = "liveward.QoETelemetryBatch"
    event_id: str
    occurred_at: int
    region: str
    partition_key: str
    pseudonym_epoch: str
    country: str
    subdivision: str
    samples: tuple[QoEBatchSample, ...]

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "partition_key": self.partition_key,
            "pseudonym_epoch": self.pseudonym_epoch,
            "country": self.country,
            "subdivision": self.subdivision,
            "samples": [item.to_avro() for item in self.samples],
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> QoETelemetryBatch:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            partition_key=record["partition_key"],
            pseudonym_epoch=record["pseudonym_epoch"],
            country=record["country"],
            subdivision=record["subdivision"],
            samples=tuple(QoEBatchSample.from_avro(item) for item in record["samples"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QoEBlockContext:
    """Who watched what from where: what a session's samples share within one request."""

    SCHEMA_NAME: ClassVar[str] = "liveward.QoEBlockContext"
    session_ref: str
    viewer_pseudonym: str
    content_id: str
    cdn: str
    serving_region: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "session_ref": self.session_ref,
            "viewer_pseudonym": self.viewer_pseudonym,
            "content_id": self.content_id,
            "cdn": self.cdn,
            "serving_region": self.serving_region,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> QoEBlockContext:
        return cls(
            session_ref=record["session_ref"],
            viewer_pseudonym=record["viewer_pseudonym"],
            content_id=record["content_id"],
            cdn=record["cdn"],
            serving_region=record["serving_region"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QoETelemetryBlock:
    """A request's samples of one partition, by column (streams/telemetry.py); key partition_key."""

    SCHEMA_NAME: ClassVar[str] = "liveward.QoETelemetryBlock"
    event_id: str
    occurred_at: int
    region: str
    partition_key: str
    pseudonym_epoch: str
    country: str
    subdivision: str
    sample_count: int
    contexts: tuple[QoEBlockContext, ...]
    context: bytes
    event_ids: bytes
    sampled_at: bytes
    bitrate_kbps: bytes
    buffer_ms: bytes
    play_ms: bytes
    rebuffer_count: bytes
    rebuffer_ms: bytes
    startup_ms: bytes
    exited_before_start: bytes
    error_codes: tuple[str, ...]
    error_code: bytes
    object_types: tuple[str, ...]
    object_type: bytes
    throughput_kbps: bytes
    top_bitrate_kbps: bytes

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "partition_key": self.partition_key,
            "pseudonym_epoch": self.pseudonym_epoch,
            "country": self.country,
            "subdivision": self.subdivision,
            "sample_count": self.sample_count,
            "contexts": [item.to_avro() for item in self.contexts],
            "context": self.context,
            "event_ids": self.event_ids,
            "sampled_at": self.sampled_at,
            "bitrate_kbps": self.bitrate_kbps,
            "buffer_ms": self.buffer_ms,
            "play_ms": self.play_ms,
            "rebuffer_count": self.rebuffer_count,
            "rebuffer_ms": self.rebuffer_ms,
            "startup_ms": self.startup_ms,
            "exited_before_start": self.exited_before_start,
            "error_codes": list(self.error_codes),
            "error_code": self.error_code,
            "object_types": list(self.object_types),
            "object_type": self.object_type,
            "throughput_kbps": self.throughput_kbps,
            "top_bitrate_kbps": self.top_bitrate_kbps,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> QoETelemetryBlock:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            partition_key=record["partition_key"],
            pseudonym_epoch=record["pseudonym_epoch"],
            country=record["country"],
            subdivision=record["subdivision"],
            sample_count=record["sample_count"],
            contexts=tuple(QoEBlockContext.from_avro(item) for item in record["contexts"]),
            context=record["context"],
            event_ids=record["event_ids"],
            sampled_at=record["sampled_at"],
            bitrate_kbps=record["bitrate_kbps"],
            buffer_ms=record["buffer_ms"],
            play_ms=record["play_ms"],
            rebuffer_count=record["rebuffer_count"],
            rebuffer_ms=record["rebuffer_ms"],
            startup_ms=record["startup_ms"],
            exited_before_start=record["exited_before_start"],
            error_codes=tuple(record["error_codes"]),
            error_code=record["error_code"],
            object_types=tuple(record["object_types"]),
            object_type=record["object_type"],
            throughput_kbps=record["throughput_kbps"],
            top_bitrate_kbps=record["top_bitrate_kbps"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QoETelemetrySample:
    """One QoE sample as analytics see it: a batch's sample joined with what its batch shares."""

    SCHEMA_NAME: ClassVar[str] = "liveward.QoETelemetrySample"
    event_id: str
    occurred_at: int
    region: str
    session_ref: str
    viewer_pseudonym: str
    pseudonym_epoch: str
    content_id: str
    cdn: str
    serving_region: str
    country: str
    subdivision: str
    sampled_at: int
    bitrate_kbps: int
    buffer_ms: int
    play_ms: int
    rebuffer_count: int
    rebuffer_ms: int
    startup_ms: int | None = None
    exited_before_start: bool = False
    error_code: str | None = None
    object_type: str | None = None
    throughput_kbps: int | None = None
    top_bitrate_kbps: int | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "session_ref": self.session_ref,
            "viewer_pseudonym": self.viewer_pseudonym,
            "pseudonym_epoch": self.pseudonym_epoch,
            "content_id": self.content_id,
            "cdn": self.cdn,
            "serving_region": self.serving_region,
            "country": self.country,
            "subdivision": self.subdivision,
            "sampled_at": self.sampled_at,
            "bitrate_kbps": self.bitrate_kbps,
            "buffer_ms": self.buffer_ms,
            "play_ms": self.play_ms,
            "rebuffer_count": self.rebuffer_count,
            "rebuffer_ms": self.rebuffer_ms,
            "startup_ms": self.startup_ms,
            "exited_before_start": self.exited_before_start,
            "error_code": self.error_code,
            "object_type": self.object_type,
            "throughput_kbps": self.throughput_kbps,
            "top_bitrate_kbps": self.top_bitrate_kbps,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> QoETelemetrySample:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            session_ref=record["session_ref"],
            viewer_pseudonym=record["viewer_pseudonym"],
            pseudonym_epoch=record["pseudonym_epoch"],
            content_id=record["content_id"],
            cdn=record["cdn"],
            serving_region=record["serving_region"],
            country=record["country"],
            subdivision=record["subdivision"],
            sampled_at=record["sampled_at"],
            bitrate_kbps=record["bitrate_kbps"],
            buffer_ms=record["buffer_ms"],
            play_ms=record["play_ms"],
            rebuffer_count=record["rebuffer_count"],
            rebuffer_ms=record["rebuffer_ms"],
            startup_ms=record["startup_ms"],
            exited_before_start=record["exited_before_start"],
            error_code=record["error_code"],
            object_type=record["object_type"],
            throughput_kbps=record["throughput_kbps"],
            top_bitrate_kbps=record["top_bitrate_kbps"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReissueNotice:
    """A session was revoked as stolen: its rightful viewer must sign in again for a fresh token."""

    SCHEMA_NAME: ClassVar[str] = "liveward.ReissueNotice"
    event_id: str
    occurred_at: int
    region: str
    viewer_ref: str
    session_id: str
    token_id: str
    rule: str
    evidence: tuple[str, ...]
    revocation_id: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "viewer_ref": self.viewer_ref,
            "session_id": self.session_id,
            "token_id": self.token_id,
            "rule": self.rule,
            "evidence": list(self.evidence),
            "revocation_id": self.revocation_id,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> ReissueNotice:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            viewer_ref=record["viewer_ref"],
            session_id=record["session_id"],
            token_id=record["token_id"],
            rule=record["rule"],
            evidence=tuple(record["evidence"]),
            revocation_id=record["revocation_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationListEntry:
    """One live entry of the revocation list; key scope:subject, compacted, tombstoned on expiry."""

    SCHEMA_NAME: ClassVar[str] = "liveward.RevocationListEntry"
    event_id: str
    occurred_at: int
    region: str
    scope: RevocationScope
    subject: str
    reason: str
    revoked_at: int
    expires_at: int
    revocation_ids: tuple[str, ...]

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "scope": self.scope.value,
            "subject": self.subject,
            "reason": self.reason,
            "revoked_at": self.revoked_at,
            "expires_at": self.expires_at,
            "revocation_ids": list(self.revocation_ids),
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> RevocationListEntry:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            scope=RevocationScope(record["scope"]),
            subject=record["subject"],
            reason=record["reason"],
            revoked_at=record["revoked_at"],
            expires_at=record["expires_at"],
            revocation_ids=tuple(record["revocation_ids"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationRequested:
    """Someone asked to revoke a token, session, device or viewer."""

    SCHEMA_NAME: ClassVar[str] = "liveward.RevocationRequested"
    event_id: str
    occurred_at: int
    region: str
    revocation_id: str
    scope: RevocationScope
    subject: str
    reason: str
    requested_by: str
    covers_until: int

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "revocation_id": self.revocation_id,
            "scope": self.scope.value,
            "subject": self.subject,
            "reason": self.reason,
            "requested_by": self.requested_by,
            "covers_until": self.covers_until,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> RevocationRequested:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            revocation_id=record["revocation_id"],
            scope=RevocationScope(record["scope"]),
            subject=record["subject"],
            reason=record["reason"],
            requested_by=record["requested_by"],
            covers_until=record["covers_until"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SteeringState:
    """The pathway priority players should follow; key content_id, compacted."""

    SCHEMA_NAME: ClassVar[str] = "liveward.SteeringState"
    event_id: str
    occurred_at: int
    region: str
    content_id: str
    pathway_priority: tuple[str, ...]
    version: int
    ttl_seconds: int
    decision_id: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "content_id": self.content_id,
            "pathway_priority": list(self.pathway_priority),
            "version": self.version,
            "ttl_seconds": self.ttl_seconds,
            "decision_id": self.decision_id,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> SteeringState:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            content_id=record["content_id"],
            pathway_priority=tuple(record["pathway_priority"]),
            version=record["version"],
            ttl_seconds=record["ttl_seconds"],
            decision_id=record["decision_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberEntitlements:
    """What a viewer may watch; key viewer_id on a compacted topic (admin API, bulk loader)."""

    SCHEMA_NAME: ClassVar[str] = "liveward.SubscriberEntitlements"
    event_id: str
    occurred_at: int
    region: str
    viewer_id: str
    packages: tuple[str, ...]
    content_ids: tuple[str, ...]
    device_classes: tuple[str, ...]
    max_concurrent_streams: int
    home_country: str
    session_version: int
    active: bool

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "viewer_id": self.viewer_id,
            "packages": list(self.packages),
            "content_ids": list(self.content_ids),
            "device_classes": list(self.device_classes),
            "max_concurrent_streams": self.max_concurrent_streams,
            "home_country": self.home_country,
            "session_version": self.session_version,
            "active": self.active,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> SubscriberEntitlements:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            viewer_id=record["viewer_id"],
            packages=tuple(record["packages"]),
            content_ids=tuple(record["content_ids"]),
            device_classes=tuple(record["device_classes"]),
            max_concurrent_streams=record["max_concurrent_streams"],
            home_country=record["home_country"],
            session_version=record["session_version"],
            active=record["active"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenIssued:
    """A playback token was issued (or renewed)."""

    SCHEMA_NAME: ClassVar[str] = "liveward.TokenIssued"
    event_id: str
    occurred_at: int
    region: str
    token_id: str
    session_id: str
    viewer_ref: str
    device_ref: str
    device_class: str
    content_id: str
    country: str
    ip_prefix: str
    issued_at: int
    expires_at: int
    signing_key_id: str
    session_version: int
    renewed_from: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "token_id": self.token_id,
            "session_id": self.session_id,
            "viewer_ref": self.viewer_ref,
            "device_ref": self.device_ref,
            "device_class": self.device_class,
            "content_id": self.content_id,
            "country": self.country,
            "ip_prefix": self.ip_prefix,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "signing_key_id": self.signing_key_id,
            "session_version": self.session_version,
            "renewed_from": self.renewed_from,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> TokenIssued:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            token_id=record["token_id"],
            session_id=record["session_id"],
            viewer_ref=record["viewer_ref"],
            device_ref=record["device_ref"],
            device_class=record["device_class"],
            content_id=record["content_id"],
            country=record["country"],
            ip_prefix=record["ip_prefix"],
            issued_at=record["issued_at"],
            expires_at=record["expires_at"],
            signing_key_id=record["signing_key_id"],
            session_version=record["session_version"],
            renewed_from=record["renewed_from"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenUsed:
    """A token was presented to a service (license, keys); feeds theft detection."""

    SCHEMA_NAME: ClassVar[str] = "liveward.TokenUsed"
    event_id: str
    occurred_at: int
    region: str
    token_id: str
    session_id: str
    viewer_ref: str
    device_ref: str
    content_id: str
    service: str
    country: str
    ip_prefix: str
    asn: int
    decision: UseDecision
    reason: str

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "region": self.region,
            "token_id": self.token_id,
            "session_id": self.session_id,
            "viewer_ref": self.viewer_ref,
            "device_ref": self.device_ref,
            "content_id": self.content_id,
            "service": self.service,
            "country": self.country,
            "ip_prefix": self.ip_prefix,
            "asn": self.asn,
            "decision": self.decision.value,
            "reason": self.reason,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> TokenUsed:
        return cls(
            event_id=record["event_id"],
            occurred_at=record["occurred_at"],
            region=record["region"],
            token_id=record["token_id"],
            session_id=record["session_id"],
            viewer_ref=record["viewer_ref"],
            device_ref=record["device_ref"],
            content_id=record["content_id"],
            service=record["service"],
            country=record["country"],
            ip_prefix=record["ip_prefix"],
            asn=record["asn"],
            decision=UseDecision(record["decision"]),
            reason=record["reason"],
        )


Event = (
    DeadLetter
    | FailoverDecision
    | IngestHealth
    | KeyEpoch
    | KeyRotated
    | LicenseIssued
    | OperatorCommand
    | OperatorCommandOutcome
    | PackagerManifestState
    | QoEAggregate
    | QoETelemetryBatch
    | QoETelemetryBlock
    | QoETelemetrySample
    | ReissueNotice
    | RevocationListEntry
    | RevocationRequested
    | SteeringState
    | SubscriberEntitlements
    | TokenIssued
    | TokenUsed
)

EVENT_TYPES: dict[str, type[Event]] = {
    DeadLetter.SCHEMA_NAME: DeadLetter,
    FailoverDecision.SCHEMA_NAME: FailoverDecision,
    IngestHealth.SCHEMA_NAME: IngestHealth,
    KeyEpoch.SCHEMA_NAME: KeyEpoch,
    KeyRotated.SCHEMA_NAME: KeyRotated,
    LicenseIssued.SCHEMA_NAME: LicenseIssued,
    OperatorCommand.SCHEMA_NAME: OperatorCommand,
    OperatorCommandOutcome.SCHEMA_NAME: OperatorCommandOutcome,
    PackagerManifestState.SCHEMA_NAME: PackagerManifestState,
    QoEAggregate.SCHEMA_NAME: QoEAggregate,
    QoETelemetryBatch.SCHEMA_NAME: QoETelemetryBatch,
    QoETelemetryBlock.SCHEMA_NAME: QoETelemetryBlock,
    QoETelemetrySample.SCHEMA_NAME: QoETelemetrySample,
    ReissueNotice.SCHEMA_NAME: ReissueNotice,
    RevocationListEntry.SCHEMA_NAME: RevocationListEntry,
    RevocationRequested.SCHEMA_NAME: RevocationRequested,
    SteeringState.SCHEMA_NAME: SteeringState,
    SubscriberEntitlements.SCHEMA_NAME: SubscriberEntitlements,
    TokenIssued.SCHEMA_NAME: TokenIssued,
    TokenUsed.SCHEMA_NAME: TokenUsed,
}
