"""Idempotent topic provisioning from the catalog, reporting topics whose config drifted."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from liveward.settings import Settings
from streams.catalog import CATALOG, TopicCatalog, TopicSpec
from streams.errors import BrokerUnavailable, StreamsError


@dataclass(frozen=True, slots=True)
class Drift:
    """One way an existing topic differs from the catalog."""

    topic: str
    setting: str
    wanted: str
    actual: str


@dataclass(slots=True)
class TopicsReport:
    """What `apply_topics` did: created, already as wanted, or existing but different."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drifts: list[Drift] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        return sorted({d.topic for d in self.drifts})


def admin_client(settings: Settings) -> AdminClient:
    # Connection failures surface as BrokerUnavailable; librdkafka's retry chatter is noise.
    return AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers, "log_level": 2})


def broker_count(settings: Settings, admin: AdminClient, timeout: float = 5.0) -> int:
    """How many brokers answer; BrokerUnavailable if none do within timeout."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.kafka.bootstrap_servers} within "
            f"{timeout:.0f}s; start one with `liveward stack up` ({exc.args[0].str()})"
        ) from exc
    return len(metadata.brokers)


def apply_topics(
    settings: Settings, catalog: TopicCatalog = CATALOG, *, timeout: float = 30.0
) -> TopicsReport:
    """Create missing catalog topics; compare existing ones. Running it twice is a no-op."""
    admin = admin_client(settings)
    brokers = broker_count(settings, admin, timeout=min(timeout, 10.0))
    replication = min(settings.kafka.replication_factor, brokers)
    min_isr = min(settings.kafka.min_insync_replicas, replication)
    existing = admin.list_topics(timeout=timeout).topics
    report = TopicsReport()

    missing = [spec for spec in catalog if spec.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=replication,
                    config=spec.config(min_isr),
                )
                for spec in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: a concurrent apply won
                    raise StreamsError(
                        f"cannot create {name}: {exc}", reason="topic-create"
                    ) from exc
            report.created.append(name)

    present = [spec for spec in catalog if spec.name in existing]
    for spec in present:
        drifts = _compare(admin, spec, existing[spec.name], replication, min_isr, timeout)
        if drifts:
            report.drifts.extend(drifts)
        else:
            report.unchanged.append(spec.name)
    return report


def _compare(
    admin: AdminClient,
    spec: TopicSpec,
    metadata: object,
    replication: int,
    min_isr: int,
    timeout: float,
) -> list[Drift]:
    partitions = getattr(metadata, "partitions", {})
    drifts = []
    if len(partitions) != spec.partitions:
        drifts.append(Drift(spec.name, "partitions", str(spec.partitions), str(len(partitions))))
    replicas = {len(p.replicas) for p in partitions.values()}
    if replicas and replicas != {replication}:
        drifts.append(
            Drift(spec.name, "replication", str(replication), ",".join(map(str, sorted(replicas))))
        )
    resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
    actual = admin.describe_configs([resource], request_timeout=timeout)[resource].result()
    for key, wanted in spec.config(min_isr).items():
        entry = actual.get(key)
        value = entry.value if entry is not None else None
        if value != wanted:
            drifts.append(Drift(spec.name, key, wanted, str(value)))
    return drifts
