"""The local stack for real: a broker answering, clear port errors, the CLI, a three-node quorum."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from infra.errors import PortInUse
from infra.kafka import KafkaCluster
from infra.stack import Stack
from liveward.settings import ClickHouseSettings, KafkaSettings, Settings, load_settings

LIVEWARD = Path(sys.executable).parent / "liveward"


def test_one_broker_answers_metadata_and_logs_through_log4j2(kafka_cluster: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_cluster.kafka.bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    assert set(metadata.brokers) == {0}
    log = KafkaCluster(kafka_cluster).log_file(0).read_text()
    assert "Kafka Server started" in log


def test_a_taken_port_fails_fast_with_a_clear_message(
    stack_settings: Settings, tmp_path: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        settings = stack_settings.model_copy(
            update={
                "state_dir": tmp_path,
                "kafka": KafkaSettings(port=taken, controller_port=taken + 1),
            }
        )
        cluster = KafkaCluster(settings)
        with pytest.raises(PortInUse, match=rf"127\.0\.0\.1:{taken} for Kafka node 0") as info:
            cluster.start()
    assert "LIVEWARD_" in str(info.value)
    assert cluster.status()[0].pid is None


@pytest.fixture
def cli_env(tmp_path: Path, port_offset: int) -> Iterator[dict[str, str]]:
    """Environment for the `liveward` CLI: its own state dir and ports, torn down after."""
    env = {
        **os.environ,
        "LIVEWARD_STATE_DIR": str(tmp_path / "state"),
        "LIVEWARD_KAFKA__PORT": str(24092 + port_offset),
        "LIVEWARD_KAFKA__CONTROLLER_PORT": str(24093 + port_offset),
        "LIVEWARD_CLICKHOUSE__NATIVE_PORT": str(24000 + port_offset),
        "LIVEWARD_CLICKHOUSE__HTTP_PORT": str(24123 + port_offset),
        "LIVEWARD_CLICKHOUSE__INTERSERVER_PORT": str(24009 + port_offset),
    }
    yield env
    Stack(_settings_from(env)).down()


def _settings_from(env: dict[str, str]) -> Settings:
    return load_settings(
        state_dir=Path(env["LIVEWARD_STATE_DIR"]),
        kafka=KafkaSettings(
            port=int(env["LIVEWARD_KAFKA__PORT"]),
            controller_port=int(env["LIVEWARD_KAFKA__CONTROLLER_PORT"]),
        ),
        clickhouse=ClickHouseSettings(
            native_port=int(env["LIVEWARD_CLICKHOUSE__NATIVE_PORT"]),
            http_port=int(env["LIVEWARD_CLICKHOUSE__HTTP_PORT"]),
            interserver_port=int(env["LIVEWARD_CLICKHOUSE__INTERSERVER_PORT"]),
        ),
    )


def _liveward(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LIVEWARD), "stack", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_brings_the_stack_up_reports_it_and_takes_it_down(cli_env: dict[str, str]) -> None:
    up = _liveward(cli_env, "up", "--clickhouse", "server")
    assert up.returncode == 0, up.stderr + up.stdout
    status = _liveward(cli_env, "status")
    assert status.returncode == 0, status.stderr + status.stdout
    assert f"127.0.0.1:{cli_env['LIVEWARD_KAFKA__PORT']}" in status.stdout
    assert "clickhouse" in status.stdout
    pids = {row.service: row.pid for row in Stack(_settings_from(cli_env)).status()}

    again = _liveward(cli_env, "up", "--clickhouse", "server")
    assert again.returncode == 0, again.stderr + again.stdout
    assert {row.service: row.pid for row in Stack(_settings_from(cli_env)).status()} == pids

    KafkaCluster(_settings_from(cli_env)).kill_node(0)
    broken = _liveward(cli_env, "status")
    assert broken.returncode == 1
    assert "kafka-0" in broken.stdout

    down = _liveward(cli_env, "down")
    assert down.returncode == 0, down.stderr + down.stdout
    assert "clickhouse" in down.stdout
    after = _liveward(cli_env, "status")
    assert after.returncode == 1
    assert "not up" in after.stdout


def test_cli_refuses_a_two_broker_cluster(cli_env: dict[str, str]) -> None:
    result = _liveward(cli_env, "up", "--brokers", "2")
    assert result.returncode == 2
    assert "1 or 3" in result.stderr


@pytest.fixture
def three_nodes(tmp_path: Path, port_offset: int) -> Iterator[KafkaCluster]:
    settings = load_settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(
            port=29092 + port_offset, controller_port=29093 + port_offset, brokers=3
        ),
    )
    cluster = KafkaCluster(settings)
    began = time.monotonic()
    cluster.start()
    print(f"three-node cluster ready in {time.monotonic() - began:.1f} s")
    try:
        yield cluster
    finally:
        cluster.stop()


def _topic_config(admin: AdminClient, topic: str, timeout: float = 30.0) -> dict[str, Any]:
    """A new topic's config; the broker asked may learn of the topic a moment after the
    controller acknowledged its creation (UNKNOWN_TOPIC_OR_PART until then)."""
    deadline = time.monotonic() + timeout
    while True:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        try:
            return dict(next(iter(admin.describe_configs([resource]).values())).result(10))
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or (
                time.monotonic() > deadline
            ):
                raise
            time.sleep(0.2)


def test_three_nodes_keep_accepting_acks_all_writes_after_losing_one(
    three_nodes: KafkaCluster, unique_name: str
) -> None:
    bootstrap = three_nodes.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(unique_name, num_partitions=3)])[unique_name].result(30)
    topic_config = _topic_config(admin, unique_name)
    assert topic_config["min.insync.replicas"].value == "2"
    partitions = admin.list_topics(unique_name, timeout=10).topics[unique_name].partitions
    assert all(len(p.replicas) == 3 for p in partitions.values())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err: KafkaError | None, _message: Message) -> None:
        if err is not None:
            failures.append(str(err))

    def produce(start: int) -> None:
        for i in range(start, start + 100):
            producer.produce(
                unique_name, key=str(i).encode(), value=str(i).encode(), on_delivery=delivered
            )
        assert producer.flush(60) == 0

    produce(0)
    leader = partitions[0].leader
    assert three_nodes.kill_node(leader)
    killed_at = time.monotonic()
    produce(100)
    recovered = time.monotonic() - killed_at
    print(f"node {leader} killed; acks=all writes acknowledged again after {recovered:.1f} s")
    producer.close()
    assert failures == []
    healthy = [row.node for row in three_nodes.status() if row.healthy]
    assert sorted(healthy) == sorted(set(range(3)) - {leader})

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique_name, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(unique_name, p, 0) for p in partitions])
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 200 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            seen.add(int(message.value() or b"-1"))
    consumer.close()
    assert seen == set(range(200))

    del admin  # its threads would log every refused reconnect while the cluster stops

    stopped = three_nodes.stop()
    assert sorted(stopped) == sorted(set(range(3)) - {leader})
    assert all(row.pid is None for row in three_nodes.status())
