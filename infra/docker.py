"""Kafka and ClickHouse as Docker containers through testcontainers, for `LIVEWARD_STACK=docker`.

Needs a Docker engine and `pip install 'liveward[docker]'`. The machines liveward is built
on have no Docker engine, so this path follows the testcontainers and image documentation
but is not exercised by the test suite there. It runs one broker: the three-node cluster
for the HA drills is the local stack's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from infra.clickhouse import ClickHouseServer
from infra.errors import MissingPrerequisite, NotReady, StackError
from infra.kafka import admin_client, kafka_version, registered_brokers, server_properties
from infra.processes import port_open
from infra.stack import ClickHouseMode, ServiceStatus
from liveward.settings import Settings

CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"
_KAFKA_DATA_DIR = PurePosixPath("/var/lib/kafka/data")
_INSTALL_HINT = "pip install 'liveward[docker]' (and a running Docker engine)"


def kafka_image() -> str:
    """The official Apache Kafka image of the version pinned in infra/kafka/pom.xml."""
    return f"apache/kafka:{kafka_version()}"


def kafka_environment(settings: Settings) -> dict[str, str]:
    """The apache/kafka image's env config: the local broker's properties, bound to 0.0.0.0.

    The image maps `KAFKA_A_B` to `a.b` (`_` in a name becomes `__`, `-` becomes `___`).
    Host and container ports are the same, so the advertised loopback address is right
    on both sides of the port mapping.
    """
    kafka = settings.kafka
    props = server_properties(kafka, 0, _KAFKA_DATA_DIR)
    props["listeners"] = (
        f"PLAINTEXT://0.0.0.0:{kafka.broker_port(0)},"
        f"CONTROLLER://0.0.0.0:{kafka.controller_port_of(0)}"
    )
    return {
        "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper(): value
        for key, value in props.items()
    }


def clickhouse_environment(settings: Settings) -> dict[str, str]:
    """The clickhouse-server image's env config for the configured user and database."""
    ch = settings.clickhouse
    password = ch.password.get_secret_value()
    env = {"CLICKHOUSE_DB": ch.database}
    if ch.user == "default" and not password:
        # Otherwise the image's entrypoint turns off network access for a passwordless default.
        env["CLICKHOUSE_SKIP_USER_SETUP"] = "1"
    else:
        env |= {"CLICKHOUSE_USER": ch.user, "CLICKHOUSE_PASSWORD": password}
    return env


class DockerStack:
    """Starts, inspects and removes the stack's containers, identified by container id."""

    def __init__(self, settings: Settings, *, timeout: float = 120.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def up(
        self, brokers: int, clickhouse: ClickHouseMode, *, running: Mapping[str, str]
    ) -> dict[str, str]:
        """Start the containers not already running; returns service name -> container id."""
        if brokers != 1:
            raise StackError(
                "the Docker stack runs one broker; use LIVEWARD_STACK=local for three",
                reason="unsupported",
            )
        containers = {name: cid for name, cid in running.items() if self._running(cid)}
        kafka = self.settings.kafka
        if "kafka" not in containers:
            containers["kafka"] = self._start(
                kafka_image(),
                kafka_environment(self.settings),
                {
                    kafka.broker_port(0): kafka.broker_port(0),
                    kafka.controller_port_of(0): kafka.controller_port_of(0),
                },
            )
        if clickhouse == "server" and "clickhouse" not in containers:
            ch = self.settings.clickhouse
            containers["clickhouse"] = self._start(
                CLICKHOUSE_IMAGE,
                clickhouse_environment(self.settings),
                {9000: ch.native_port, 8123: ch.http_port},
            )
        self._wait_ready(containers)
        return containers

    def status(self, containers: Mapping[str, str]) -> list[ServiceStatus]:
        kafka, ch = self.settings.kafka, self.settings.clickhouse
        addresses = {
            "kafka": (kafka.host, kafka.broker_port(0)),
            "clickhouse": (ch.host, ch.native_port),
        }
        rows = []
        for name, cid in containers.items():
            host, port = addresses[name]
            rows.append(
                ServiceStatus(
                    f"{name} (docker {cid[:12]})",
                    None,
                    f"{host}:{port}",
                    self._running(cid) and port_open(host, port),
                )
            )
        return rows

    def down(self, containers: Mapping[str, str]) -> list[str]:
        """Remove the recorded containers; returns the names of those that existed."""
        sdk = _docker_sdk()
        removed = []
        for name, cid in containers.items():
            try:
                self._client.containers.get(cid).remove(force=True)
            except sdk.errors.NotFound:
                continue
            removed.append(name)
        return removed

    def _start(self, image: str, env: Mapping[str, str], ports: Mapping[int, int]) -> str:
        container_cls, config = _testcontainers()
        # The containers must outlive `liveward stack up`; `down` removes them by id instead.
        config.ryuk_disabled = True
        container = container_cls(image)
        for key, value in env.items():
            container.with_env(key, value)
        for container_port, host_port in ports.items():
            container.with_bind_ports(container_port, (self.settings.kafka.host, host_port))
        try:
            container.start()
        except Exception as exc:
            raise StackError(f"could not start {image}: {exc}", reason="docker-failed") from exc
        return str(container.get_wrapped_container().id)

    def _wait_ready(self, containers: Mapping[str, str]) -> None:
        deadline = time.monotonic() + self.timeout
        admin = admin_client(self.settings.kafka.bootstrap_servers)
        server = ClickHouseServer(self.settings)
        while True:
            kafka_ready = bool(registered_brokers(admin, timeout=1.0))
            clickhouse_ready = "clickhouse" not in containers or server.ready()
            if kafka_ready and clickhouse_ready:
                return
            stopped = [name for name, cid in containers.items() if not self._running(cid)]
            if stopped or time.monotonic() >= deadline:
                raise NotReady(
                    f"Docker containers not ready (exited: {stopped or 'none'}); "
                    f"see `docker logs` of {dict(containers)}",
                    reason="docker-not-ready",
                )
            time.sleep(0.5)

    def _running(self, cid: str) -> bool:
        sdk = _docker_sdk()
        try:
            return bool(self._client.containers.get(cid).status == "running")
        except sdk.errors.NotFound:
            return False

    @functools.cached_property
    def _client(self) -> Any:
        sdk = _docker_sdk()
        try:
            return sdk.from_env()
        except sdk.errors.DockerException as exc:
            raise MissingPrerequisite(f"no Docker engine answers: {exc}") from exc


def _testcontainers() -> tuple[Any, Any]:
    try:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer
    except ImportError as exc:
        raise MissingPrerequisite(
            f"LIVEWARD_STACK=docker needs testcontainers: {_INSTALL_HINT}"
        ) from exc
    return DockerContainer, testcontainers_config


def _docker_sdk() -> Any:
    try:
        import docker
    except ImportError as exc:
        raise MissingPrerequisite(
            f"LIVEWARD_STACK=docker needs the docker SDK: {_INSTALL_HINT}"
        ) from exc
    return docker
