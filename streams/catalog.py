"""The topic catalog: every topic's name, event, key, partitions, cleanup policy and retention."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from streams import events as ev
from streams.codec import AvroEvent
from streams.errors import StreamsError

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

CleanupPolicy = Literal["delete", "compact", "compact,delete"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the catalog wants it; `key_fields` build the record key, joined by '|'."""

    name: str
    event_type: type[AvroEvent]
    key_fields: tuple[str, ...]
    partitions: int
    cleanup_policy: CleanupPolicy
    retention_ms: int | None
    doc: str

    def key_of(self, event: AvroEvent) -> bytes:
        """The record key: the named fields of the event joined by '|'."""
        return "|".join(str(getattr(event, name)) for name in self.key_fields).encode()

    def config(self, min_insync_replicas: int) -> dict[str, str]:
        """Topic-level configs the catalog owns (compared on `topics apply`)."""
        config = {
            "cleanup.policy": self.cleanup_policy,
            "min.insync.replicas": str(min_insync_replicas),
        }
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        if "compact" in self.cleanup_policy:
            # Compacted state is read by every region at start-up; keep it small and fresh.
            config["min.cleanable.dirty.ratio"] = "0.1"
            config["segment.ms"] = str(HOUR_MS)
        return config


class TopicCatalog:
    """The named set of topics liveward uses; look up by topic name or by event type."""

    def __init__(self, specs: tuple[TopicSpec, ...]) -> None:
        self._specs = {spec.name: spec for spec in specs}
        if len(self._specs) != len(specs):
            raise StreamsError("duplicate topic names in the catalog", reason="catalog")

    def __iter__(self) -> Iterator[TopicSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __getitem__(self, name: str) -> TopicSpec:
        try:
            return self._specs[name]
        except KeyError as exc:
            raise StreamsError(f"no topic {name!r} in the catalog", reason="unknown-topic") from exc

    def names(self) -> list[str]:
        return list(self._specs)


def _spec(
    name: str,
    event_type: type[AvroEvent],
    key: tuple[str, ...],
    *,
    partitions: int = 3,
    cleanup: CleanupPolicy = "delete",
    retention_ms: int | None = 7 * DAY_MS,
    doc: str,
) -> TopicSpec:
    for field_name in key:
        if field_name not in event_type.__dataclass_fields__:  # type: ignore[attr-defined]
            raise StreamsError(f"{name}: key field {field_name} not in {event_type.SCHEMA_NAME}")
    return TopicSpec(name, event_type, key, partitions, cleanup, retention_ms, doc)


CATALOG = TopicCatalog(
    (
        _spec(
            "ingest.health",
            ev.IngestHealth,
            ("region",),
            retention_ms=DAY_MS,
            doc="Heartbeats of ingest points, packagers and origins, one per second each.",
        ),
        _spec(
            "ingest.manifest-state",
            ev.PackagerManifestState,
            ("content_id", "region"),
            cleanup="compact",
            retention_ms=None,
            doc="Live playlist state per (content, region); both packagers of a pair read it.",
        ),
        _spec(
            "subscribers.entitlements",
            ev.SubscriberEntitlements,
            ("viewer_id",),
            cleanup="compact",
            retention_ms=None,
            doc="What each viewer may watch; the auth service's view is built from it.",
        ),
        _spec(
            "auth.tokens-issued",
            ev.TokenIssued,
            ("session_id",),
            doc="Every playback token issued or renewed.",
        ),
        _spec(
            "auth.tokens-used",
            ev.TokenUsed,
            ("session_id",),
            doc="Every token presentation at a license or key endpoint (theft detection).",
        ),
        _spec(
            "auth.revocations",
            ev.RevocationRequested,
            ("scope", "subject"),
            doc="Revocation requests by scope (token, session, device, viewer).",
        ),
        _spec(
            "auth.revocation-list",
            ev.RevocationListEntry,
            ("scope", "subject"),
            cleanup="compact",
            retention_ms=None,
            doc="The live revocation list, folded from requests; expired entries tombstoned.",
        ),
        _spec(
            "auth.reissue-notices",
            ev.ReissueNotice,
            ("viewer_ref",),
            doc="Sessions revoked as stolen: their viewers must sign in again.",
        ),
        _spec(
            "keys.epochs",
            ev.KeyEpoch,
            ("epoch_id",),
            cleanup="compact",
            retention_ms=None,
            doc="Epoch master keys wrapped under each region's KEK (never in the clear).",
        ),
        _spec(
            "keys.rotations",
            ev.KeyRotated,
            ("content_id",),
            doc="Content key periods as they begin; key ids only.",
        ),
        _spec(
            "drm.licenses",
            ev.LicenseIssued,
            ("content_id",),
            # One partition: the tamper-evident log appends licenses in one total order.
            partitions=1,
            retention_ms=30 * DAY_MS,
            doc="Every license answered; the WORM sink appends them to a Merkle log.",
        ),
        _spec(
            "qoe.telemetry",
            ev.QoETelemetryBlock,
            # The first sample's session_ref: a block holds only sessions of its partition.
            ("partition_key",),
            partitions=6,
            retention_ms=3 * DAY_MS,
            doc="Pseudonymised player QoE samples from the bridge, a block (by column) per "
            "request and partition.",
        ),
        _spec(
            "qoe.aggregates",
            ev.QoEAggregate,
            ("serving_region", "cdn", "content_id"),
            retention_ms=30 * DAY_MS,
            doc="Windowed QoE aggregates with a k-anonymity floor.",
        ),
        _spec(
            "control.failover",
            ev.FailoverDecision,
            ("content_id",),
            cleanup="compact",
            retention_ms=None,
            doc="Failover decisions of the QoE control plane and operators.",
        ),
        _spec(
            "control.steering",
            ev.SteeringState,
            ("content_id",),
            cleanup="compact",
            retention_ms=None,
            doc="The pathway priority the steering service answers players with.",
        ),
        _spec(
            "control.ingest-health",
            ev.IngestHealth,
            ("region",),
            # One partition: the control plane's single decision-maker must see every region.
            partitions=1,
            retention_ms=DAY_MS,
            doc="ingest.health forwarded onto one partition for the control plane.",
        ),
        _spec(
            "control.qoe-aggregates",
            ev.QoEAggregate,
            ("serving_region", "cdn", "content_id"),
            partitions=1,
            retention_ms=DAY_MS,
            doc="qoe.aggregates forwarded onto one partition for the control plane.",
        ),
        _spec(
            "control.commands",
            ev.OperatorCommand,
            ("command_id",),
            # One partition: drains and restores apply in the order operators gave them.
            partitions=1,
            # Kept forever (a few records a day): a drain holds until restored, and replay
            # must see it however old it is.
            retention_ms=-1,
            doc="Operator drain/restore commands for regions and pathways.",
        ),
        _spec(
            "control.command-outcomes",
            ev.OperatorCommandOutcome,
            ("command_id",),
            partitions=1,
            doc="What the control plane did with each operator command (applied or refused).",
        ),
        _spec(
            "liveward.dead-letter",
            ev.DeadLetter,
            ("source_topic",),
            partitions=1,
            retention_ms=30 * DAY_MS,
            doc="Records a worker could not process, with the reason and the original bytes.",
        ),
    )
)
