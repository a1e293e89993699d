"""The ClickHouse sink: backends (server, embedded), migrations, table mappings, retention."""

from sinks.clickhouse.backends import ClickHouseBackend, EmbeddedBackend, NativeBackend, backend_for
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.retention import drop_expired_partitions, list_partitions
from sinks.clickhouse.sink import ClickHouseSink, SinkBatch
from sinks.clickhouse.tables import (
    DEFAULT_ROUTES,
    INGEST_HEALTH_BEATS,
    QOE_TELEMETRY_SAMPLES,
    TableMapping,
)

__all__ = [
    "DEFAULT_ROUTES",
    "INGEST_HEALTH_BEATS",
    "QOE_TELEMETRY_SAMPLES",
    "ClickHouseBackend",
    "ClickHouseSink",
    "EmbeddedBackend",
    "NativeBackend",
    "SinkBatch",
    "TableMapping",
    "apply_migrations",
    "backend_for",
    "drop_expired_partitions",
    "list_partitions",
]
