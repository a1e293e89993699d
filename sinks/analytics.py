"""The analytics sink, wired: topics → Avro codec → ClickHouse; bad records → dead letters."""

from __future__ import annotations

import logging
import threading
import time

from liveward.settings import Settings
from sinks.clickhouse.backends import ClickHouseBackend, backend_for, qualified
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.retention import RetentionSchedule, apply_retention
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.tables import DEFAULT_ROUTES
from sinks.errors import SinkError
from sinks.runner import BadRecord, SinkRunner
from streams.codec import default_codec
from streams.deadletter import DeadLetterPublisher
from streams.meta import now_ms
from streams.producer import EventProducer

log = logging.getLogger(__name__)

GROUP_ID = "liveward-clickhouse-sink"
# Day partitions expire once a day; checking hourly bounds how long an expired day lingers.
RETENTION_INTERVAL_S = 3_600.0


class AnalyticsSink:
    """Runs the ClickHouse sink for every routed topic on a thread of its own.

    Undecodable records and records that do not fit their table are published to the
    dead-letter topic (confirmed) before their offset can be committed.
    """

    def __init__(self, settings: Settings, *, group_id: str = GROUP_ID) -> None:
        self._settings = settings
        self.backend: ClickHouseBackend = backend_for(settings)
        apply_migrations(self.backend)
        self._producer = EventProducer(settings)
        self._dead_letters = DeadLetterPublisher(self._producer, settings.region)
        self.runner = SinkRunner(
            settings,
            ClickHouseSink(self.backend, DEFAULT_ROUTES),
            topics=list(DEFAULT_ROUTES),
            group_id=group_id,
            decode=default_codec().decode,
            on_bad_record=self._dead_letter,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.runner.run, args=(self._stop,), daemon=True)
        self._retention = threading.Thread(target=self._keep_retention, daemon=True)

    def _dead_letter(self, record: BadRecord) -> None:
        self._dead_letters.publish(
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            key=record.key,
            value=record.value,
            reason_code=record.reason,
            reason_detail=record.detail,
            consumer=GROUP_ID,
        )

    def _keep_retention(self) -> None:
        """Drop expired day partitions at start and every RETENTION_INTERVAL_S until stopped."""
        schedule = RetentionSchedule(RETENTION_INTERVAL_S)
        keep_days = self._settings.analytics.retention_days
        while not self._stop.is_set():
            if schedule.due(time.monotonic()):
                try:
                    dropped = apply_retention(self.backend, now_ms=now_ms(), keep_days=keep_days)
                except SinkError as exc:
                    log.warning("retention pass failed, retried next time: %s", exc)
                else:
                    if dropped:
                        log.info("retention (%d days) dropped %s", keep_days, dropped)
            self._stop.wait(min(RETENTION_INTERVAL_S, 60.0))

    def start(self) -> None:
        self._thread.start()
        self._retention.start()

    def stop(self) -> None:
        """Flush what is buffered, commit, and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=30)
        self._retention.join(timeout=30)
        self._producer.close()
        self.backend.close()

    def row_counts(self, *, since_ms: int = 0) -> dict[str, int]:
        """Distinct events per routed table that occurred at or after since_ms.

        Re-delivered events are not counted twice (uniqExact on event_id).
        """
        return {
            mapping.table: int(
                self.backend.execute(
                    f"SELECT uniqExact(event_id) FROM {qualified(self.backend, mapping.table)} "
                    f"WHERE occurred_at >= {int(since_ms)}"
                )[0][0]
            )
            for mapping in DEFAULT_ROUTES.values()
        }
