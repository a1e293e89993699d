"""A worker restart in the middle of a window loses none of the window's samples.

The windows live in a Faust table (memory store, changelog on Kafka): a worker that stops
with a window open and starts again recovers it from the changelog. This runs on a broker
of its own, so stopping the worker disturbs no other test's agents.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.kafka import KafkaCluster
from infra.processes import ManagedProcess
from liveward.settings import KafkaSettings, Settings, load_settings
from streams.meta import now_ms
from streams.producer import EventProducer
from streams.topics import apply_topics
from tests.fixtures.qoe import aggregates_of, partial_samples, send_samples, telemetry

WINDOW_MS = 10_000


@pytest.fixture
def own_cluster(tmp_path: Path, port_offset: int) -> Iterator[Settings]:
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka=KafkaSettings(
            port=19692 + port_offset, controller_port=19693 + port_offset, session_timeout_ms=6_000
        ),
    )
    cluster = KafkaCluster(settings)
    cluster.start()
    try:
        apply_topics(settings)
        yield settings
    finally:
        cluster.stop()


def worker_process(settings: Settings) -> ManagedProcess:
    return ManagedProcess(
        name="restart-worker",
        pid_file=settings.state_dir / "pids" / "restart-worker.pid",
        log_file=settings.log_dir / "restart-worker.log",
    )


def start(settings: Settings) -> ManagedProcess:
    process = worker_process(settings)
    process.start(
        [sys.executable, "-m", "liveward.cli", "worker", "--loglevel", "info"],
        env={**os.environ, **settings.as_env()},
    )
    return process


def test_an_open_window_survives_a_worker_restart(own_cluster: Settings) -> None:
    region = f"restart-{uuid.uuid4().hex[:8]}"
    t = now_ms() - 300_000
    a = t - t % WINDOW_MS
    producer = EventProducer(own_cluster)
    worker = start(own_cluster)
    try:
        first = [telemetry(region, v, sampled_at=a + v) for v in range(12)]
        send_samples(producer, first)
        # The first stage has summarised them: they sit in the open window of stage two.
        assert partial_samples(own_cluster, region, 12) == 12
        worker.stop()

        worker = start(own_cluster)
        more = [telemetry(region, 100 + v, sampled_at=a + 5_000 + v) for v in range(3)]
        closing = [telemetry(region, v, sampled_at=a + 30_000 + v) for v in range(10)]
        send_samples(producer, more + closing)

        published = aggregates_of(
            own_cluster, region, lambda f: any(x.window_start == a for x in f)
        )
    finally:
        producer.close()
        worker.stop()

    [window_a] = [x for x in published if x.window_start == a]
    assert (window_a.samples, window_a.viewers) == (15, 15)
    assert window_a.late_samples == 0
