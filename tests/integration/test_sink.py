"""The Kafka → ClickHouse sink on a real broker and a real server, through a server outage.

Records are produced with an explicit partition and `beat_seq` equal to the offset they
will get, so "the committed offset never ran ahead of what was written" can be checked
as: for committed offset c of a partition, every good record with `beat_seq < c` of
that partition is in ClickHouse.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from infra.clickhouse import ClickHouseServer
from infra.processes import wait_until
from liveward.settings import Settings
from sinks.backoff import Backoff
from sinks.clickhouse.backends import NativeBackend
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.sink import ClickHouseSink
from sinks.clickhouse.tables import INGEST_HEALTH_BEATS
from sinks.errors import ClickHouseUnavailable
from sinks.runner import BadRecord, SinkRunner

PARTITIONS = 3
TABLE = INGEST_HEALTH_BEATS.table


@dataclass
class Feed:
    """Produces beats to one topic and remembers what each partition holds."""

    settings: Settings
    topic: str
    produced: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(PARTITIONS), 0))
    bad: dict[int, set[int]] = field(default_factory=lambda: {p: set() for p in range(PARTITIONS)})

    def __post_init__(self) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )

    def beats(self, per_partition: int) -> None:
        for _ in range(per_partition):
            for partition in range(PARTITIONS):
                self._send(partition, orjson.dumps(self._beat(partition)))
        self._flush()

    def trickle(self, per_partition: int, chunks: int, pause: float) -> None:
        """Produce in chunks with pauses between, like a live feed."""
        for _ in range(chunks):
            self.beats(per_partition // chunks)
            time.sleep(pause)

    def undecodable(self, partition: int) -> None:
        self.bad[partition].add(self.produced[partition])
        self._send(partition, b"\x00not json")
        self._flush()

    def misfit(self, partition: int) -> None:
        self.bad[partition].add(self.produced[partition])
        self._send(partition, orjson.dumps({**self._beat(partition), "beat_seq": "seven"}))
        self._flush()

    @property
    def good(self) -> int:
        return sum(self.produced.values()) - sum(len(b) for b in self.bad.values())

    def good_below(self, partition: int, offset: int) -> int:
        return offset - sum(1 for bad in self.bad[partition] if bad < offset)

    def _beat(self, partition: int) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "occurred_at": int(time.time() * 1000),
            "region": "eu-west",
            "source_id": f"partition-{partition}",
            "role": "PACKAGER",
            "content_id": "live-1",
            "beat_seq": self.produced[partition],
            "last_segment_seq": -1,
            "last_segment_at": 0,
            "status": "OK",
        }

    def _send(self, partition: int, value: bytes) -> None:
        self.producer.produce(self.topic, value, partition=partition)
        self.produced[partition] += 1
        self.producer.poll(0)

    def _flush(self) -> None:
        assert self.producer.flush(30) == 0, "Kafka did not confirm every record"


@dataclass
class RunningSink:
    """A SinkRunner on its own thread, with what it dead-lettered and how it ended."""

    runner: SinkRunner
    bad_records: list[BadRecord]
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="sink-runner", daemon=True)

    def _run(self) -> None:
        try:
            self.runner.run(self.stop)
        except BaseException as exc:
            self.error = exc
            raise

    def alive(self) -> bool:
        assert self.error is None, f"the sink runner died: {self.error!r}"
        return self.thread.is_alive()

    def halt(self) -> None:
        """Stop the runner as a shutdown would, and wait until its consumer has left."""
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the sink runner did not stop"
        assert self.error is None, f"the sink runner died: {self.error!r}"


@pytest.fixture
def sink_settings(clickhouse_server: Settings, kafka_cluster: Settings) -> Iterator[Settings]:
    """Server-backed settings with a database of this test's own, migrated, dropped after."""
    database = f"sink_{uuid.uuid4().hex[:12]}"
    settings = clickhouse_server.model_copy(
        update={
            "clickhouse": clickhouse_server.clickhouse.model_copy(update={"database": database})
        }
    )
    backend = NativeBackend(settings)
    apply_migrations(backend)
    yield settings
    ClickHouseServer(settings).start()  # in case the test stopped it and failed before restarting
    backend.execute(f"DROP DATABASE IF EXISTS `{database}`")
    backend.close()


@pytest.fixture
def topic(sink_settings: Settings, unique_name: str) -> str:
    admin = AdminClient({"bootstrap.servers": sink_settings.kafka.bootstrap_servers})
    futures = admin.create_topics([NewTopic(unique_name, PARTITIONS, 1)], operation_timeout=30)
    futures[unique_name].result(timeout=30)
    return unique_name


@pytest.fixture
def start_runner(
    sink_settings: Settings, topic: str, unique_name: str
) -> Iterator[Callable[[], RunningSink]]:
    """Starts sink runners in the test's consumer group; all are halted at the end."""
    started: list[RunningSink] = []

    def start() -> RunningSink:
        bad_records: list[BadRecord] = []
        runner = SinkRunner(
            sink_settings,
            ClickHouseSink(NativeBackend(sink_settings, timeout=5.0), {topic: INGEST_HEALTH_BEATS}),
            topics=[topic],
            group_id=unique_name,
            decode=orjson.loads,
            on_bad_record=bad_records.append,
            flush_rows=2_000,
            flush_interval=0.2,
            backoff=Backoff(initial=0.1, factor=2.0, cap=1.0),
        )
        running = RunningSink(runner, bad_records)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.halt()


def committed(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offsets (next to read) per partition; 0 where none is."""
    reader = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": group_id})
    try:
        offsets = reader.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10
        )
    finally:
        reader.close()
    return {tp.partition: max(tp.offset, 0) for tp in offsets}


class Table:
    """Reads what reached ClickHouse, counting each event once (FINAL / uniqExact)."""

    def __init__(self, settings: Settings) -> None:
        self.backend = NativeBackend(settings)
        self.name = f"`{settings.clickhouse.database}`.{TABLE}"

    def distinct(self) -> int:
        return int(self.backend.execute(f"SELECT uniqExact(event_id) FROM {self.name}")[0][0])

    def final_count(self) -> int:
        return int(self.backend.execute(f"SELECT count() FROM {self.name} FINAL")[0][0])

    def written_below(self, partition: int, offset: int) -> int:
        rows = self.backend.execute(
            f"SELECT uniqExact(event_id) FROM {self.name} "
            f"WHERE source_id = 'partition-{partition}' AND beat_seq < {offset}"
        )
        return int(rows[0][0])

    def reaches(self, total: int) -> bool:
        try:
            return self.distinct() >= total
        except ClickHouseUnavailable:
            return False


def assert_commits_behind_writes(feed: Feed, table: Table, offsets: dict[int, int]) -> None:
    """Every good record below each committed offset is already in ClickHouse."""
    for partition, offset in offsets.items():
        assert table.written_below(partition, offset) == feed.good_below(partition, offset), (
            f"partition {partition} committed offset {offset} before its records were written"
        )


def test_every_record_lands_once_and_offsets_follow_writes(
    sink_settings: Settings,
    topic: str,
    unique_name: str,
    start_runner: Callable[[], RunningSink],
) -> None:
    running_sink = start_runner()
    feed = Feed(sink_settings, topic)
    table = Table(sink_settings)
    feed.beats(per_partition=1_000)
    feed.undecodable(partition=0)
    feed.misfit(partition=1)
    feed.beats(per_partition=1_000)

    assert wait_until(lambda: running_sink.alive() and table.reaches(feed.good), timeout=60)
    assert wait_until(
        lambda: committed(sink_settings, unique_name, topic) == feed.produced, timeout=30
    )

    assert table.distinct() == table.final_count() == feed.good == 6_000
    assert sorted((b.partition, b.reason) for b in running_sink.bad_records) == [
        (0, "decode-error"),
        (1, "record-rejected"),
    ]
    assert {b.offset for b in running_sink.bad_records} == {1_000}


def test_a_clickhouse_outage_loses_nothing_and_duplicates_nothing(
    sink_settings: Settings,
    topic: str,
    unique_name: str,
    start_runner: Callable[[], RunningSink],
) -> None:
    first = start_runner()
    feed = Feed(sink_settings, topic)
    table = Table(sink_settings)
    server = ClickHouseServer(sink_settings)
    feed.beats(per_partition=500)
    assert wait_until(lambda: first.alive() and table.reaches(feed.good), timeout=60)
    assert_commits_behind_writes(feed, table, committed(sink_settings, unique_name, topic))

    # Records in flight while the server goes away: some batches fail half-written.
    producing = threading.Thread(
        target=feed.trickle, kwargs={"per_partition": 2_000, "chunks": 20, "pause": 0.05}
    )
    producing.start()
    time.sleep(0.4)
    assert server.stop()
    producing.join()
    assert wait_until(lambda: first.runner.stats.backpressure >= 2, timeout=30)

    held = committed(sink_settings, unique_name, topic)
    feed.beats(per_partition=500)
    time.sleep(2.0)  # several retries happen meanwhile, all refused
    assert first.alive() and first.runner.backing_off
    assert committed(sink_settings, unique_name, topic) == held

    # The sink process goes away during the outage with rows it never wrote: those must
    # still be uncommitted, so the runner that takes over reads them again.
    first.halt()
    second = start_runner()
    server.start()
    assert wait_until(lambda: second.alive() and table.reaches(feed.good), timeout=60)
    assert_commits_behind_writes(feed, table, committed(sink_settings, unique_name, topic))
    assert wait_until(
        lambda: committed(sink_settings, unique_name, topic) == feed.produced, timeout=30
    )

    assert table.distinct() == table.final_count() == feed.good == 9_000
    assert first.bad_records == second.bad_records == []
