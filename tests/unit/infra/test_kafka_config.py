"""Rendering of the brokers' KRaft configs, and the prerequisite checks that run before any JVM."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from infra.errors import MissingPrerequisite
from infra.kafka import (
    POM,
    java_binary,
    java_major_version,
    kafka_version,
    render_server_properties,
    runtime_libs,
    server_properties,
)
from liveward.settings import KafkaSettings

INTERNAL_REPLICATION = (
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "share.coordinator.state.topic.replication.factor",
)
INTERNAL_MIN_ISR = (
    "min.insync.replicas",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.min.isr",
)


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_one_node_is_a_combined_broker_and_controller_voting_alone() -> None:
    props = parse(render_server_properties(KafkaSettings(), 0, Path("/data/node-0")))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "0"
    assert props["controller.quorum.voters"] == "0@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["log.dirs"] == "/data/node-0"
    assert all(props[key] == "1" for key in INTERNAL_REPLICATION + INTERNAL_MIN_ISR)
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_three_nodes_share_the_voters_and_replicate_three_ways() -> None:
    kafka = KafkaSettings(brokers=3)
    nodes = [server_properties(kafka, n, Path(f"/data/node-{n}")) for n in range(3)]
    voters = "0@127.0.0.1:9093,1@127.0.0.1:9193,2@127.0.0.1:9293"
    assert {props["controller.quorum.voters"] for props in nodes} == {voters}
    assert nodes[2]["listeners"] == "PLAINTEXT://127.0.0.1:9292,CONTROLLER://127.0.0.1:9293"
    assert [props["node.id"] for props in nodes] == ["0", "1", "2"]
    assert len({props["log.dirs"] for props in nodes}) == 3
    for props in nodes:
        assert all(props[key] == "3" for key in INTERNAL_REPLICATION)
        assert all(props[key] == "2" for key in INTERNAL_MIN_ISR)


def test_ports_and_host_come_from_the_settings() -> None:
    kafka = KafkaSettings(host="127.0.0.2", port=29092, controller_port=29093, brokers=3)
    props = server_properties(kafka, 1, Path("/d"))
    assert props["listeners"] == "PLAINTEXT://127.0.0.2:29192,CONTROLLER://127.0.0.2:29193"
    assert props["controller.quorum.voters"].startswith("0@127.0.0.2:29093,")


def test_the_kafka_version_is_the_one_pinned_in_the_pom() -> None:
    pinned = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    assert pinned is not None
    assert kafka_version() == pinned.group(1)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_292"', 8),
        ("no version here", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


def test_missing_java_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    java_binary.cache_clear()
    try:
        with pytest.raises(MissingPrerequisite, match="apt-get install openjdk-17-jre-headless"):
            java_binary()
    finally:
        java_binary.cache_clear()


def test_a_complete_cache_is_used_without_maven(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / f"kafka-{kafka_version()}"
    (home / "libs").mkdir(parents=True)
    (home / ".complete").write_text(hashlib.sha256(POM.read_bytes()).hexdigest())
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert runtime_libs(tmp_path) == home / "libs"


def test_a_cache_fetched_for_another_pom_is_fetched_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / f"kafka-{kafka_version()}"
    (home / "libs").mkdir(parents=True)
    (home / ".complete").write_text("digest-of-an-older-pom")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MissingPrerequisite, match=r"mvn .*apt-get install .*maven"):
        runtime_libs(tmp_path)
