"""Session fixtures for integration tests: a real Kafka broker and ClickHouse server on test ports.

Test ports (Kafka 19092/19093, ClickHouse 19000/18123/19009) sit apart from a developer's
own stack; `LIVEWARD_TEST_PORT_OFFSET=1000` moves every test port by 1000 when two sessions
share a machine. State (data, logs, PID files, chdb) lives in a fresh directory per session.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.clickhouse import ClickHouseServer
from infra.kafka import KafkaCluster
from infra.processes import ManagedProcess
from liveward.settings import ClickHouseSettings, KafkaSettings, Settings, load_settings
from streams.topics import apply_topics

HERE = Path(__file__).resolve().parent
PORT_OFFSET = int(os.environ.get("LIVEWARD_TEST_PORT_OFFSET", "0"))


def _port(port: int) -> int:
    return port + PORT_OFFSET


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, not only this folder's.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def port_offset() -> int:
    """Added to every test port (LIVEWARD_TEST_PORT_OFFSET), for tests that pick their own."""
    return PORT_OFFSET


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the session's stack: test ports, its own state dir and chdb path."""
    state_dir = tmp_path_factory.mktemp("stack")
    return load_settings(
        state_dir=state_dir,
        kafka=KafkaSettings(port=_port(19092), controller_port=_port(19093), brokers=1),
        clickhouse=ClickHouseSettings(
            native_port=_port(19000),
            http_port=_port(18123),
            interserver_port=_port(19009),
            embedded_path=state_dir / "chdb",
        ),
    )


@pytest.fixture(scope="session")
def kafka_cluster(stack_settings: Settings) -> Iterator[Settings]:
    """A one-broker Kafka for the whole session; stopped by PID at the end, pass or fail."""
    cluster = KafkaCluster(stack_settings)
    cluster.start()
    try:
        yield stack_settings
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def clickhouse_server(stack_settings: Settings) -> Iterator[Settings]:
    """Debian's clickhouse-server for the whole session; stopped by PID at the end.

    Yields the session settings with `clickhouse.backend="server"`, pointing at it.
    """
    settings = stack_settings.model_copy(
        update={"clickhouse": stack_settings.clickhouse.model_copy(update={"backend": "server"})}
    )
    server = ClickHouseServer(settings)
    server.start()
    try:
        yield settings
    finally:
        server.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/group name no other test (or earlier run) uses: the test's name plus a uuid."""
    test = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:60].strip("-")
    return f"{test}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def worker(kafka_cluster: Settings) -> Iterator[Settings]:
    """`liveward worker` (every Faust agent) as its own process for the session, with the
    catalog topics created; stopped by PID afterwards."""
    apply_topics(kafka_cluster)
    process = ManagedProcess(
        name="worker",
        pid_file=kafka_cluster.state_dir / "pids" / "test-worker.pid",
        log_file=kafka_cluster.log_dir / "test-worker.log",
    )
    process.start(
        [sys.executable, "-m", "liveward.cli", "worker", "--loglevel", "info"],
        env={**os.environ, **kafka_cluster.as_env()},
    )
    try:
        yield kafka_cluster
    finally:
        process.stop()
