"""The analytics sink, wired: topics → Avro codec → ClickHouse; bad records → dead letters."""

from __future__ import annotations

import threading

from liveward.settings import Settings
from sinks.clickhouse.backends import ClickHouseBackend, backend_for, qualified
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.tables import DEFAULT_ROUTES
from sinks.runner import BadRecord, SinkRunner
from streams.codec import default_codec
from streams.deadletter import DeadLetterPublisher
from streams.producer import EventProducer

GROUP_ID = "liveward-clickhouse-sink"


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

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Flush what is buffered, commit, and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=30)
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
