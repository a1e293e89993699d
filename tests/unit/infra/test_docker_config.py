"""The Docker stack's container configuration, and its errors on a machine without Docker."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from infra.docker import DockerStack, clickhouse_environment, kafka_environment, kafka_image
from infra.errors import MissingPrerequisite, StackError
from infra.kafka import kafka_version
from liveward.settings import ClickHouseSettings, KafkaSettings, Settings, load_settings


def settings(tmp_path: Path, **clickhouse: object) -> Settings:
    return load_settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(port=19092, controller_port=19093),
        clickhouse=ClickHouseSettings(**clickhouse),  # type: ignore[arg-type]
    )


def test_the_broker_image_is_the_pinned_kafka_version() -> None:
    assert kafka_image() == f"apache/kafka:{kafka_version()}"


def test_the_container_listens_everywhere_and_advertises_loopback(tmp_path: Path) -> None:
    env = kafka_environment(settings(tmp_path))
    assert env["KAFKA_LISTENERS"] == "PLAINTEXT://0.0.0.0:19092,CONTROLLER://0.0.0.0:19093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://127.0.0.1:19092"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "0@127.0.0.1:19093"
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_a_passwordless_default_user_keeps_network_access(tmp_path: Path) -> None:
    assert clickhouse_environment(settings(tmp_path))["CLICKHOUSE_SKIP_USER_SETUP"] == "1"
    env = clickhouse_environment(settings(tmp_path, user="analyst", password="s3cret"))
    assert env["CLICKHOUSE_USER"] == "analyst"
    assert env["CLICKHOUSE_PASSWORD"] == "s3cret"


def test_three_brokers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="one broker"):
        DockerStack(settings(tmp_path)).up(3, "embedded", running={})


@pytest.mark.skipif(
    importlib.util.find_spec("testcontainers") is not None, reason="testcontainers is installed"
)
def test_without_testcontainers_the_error_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingPrerequisite, match=r"liveward\[docker\]"):
        DockerStack(settings(tmp_path)).up(1, "embedded", running={})
