"""The whole local stack, Kafka plus ClickHouse, as one thing to bring up, inspect and take down."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from infra.clickhouse import ClickHouseServer
from infra.errors import StackError
from infra.kafka import KafkaCluster
from liveward.settings import KafkaSettings, Settings

ClickHouseMode = Literal["embedded", "server"]
CLICKHOUSE_MODES: tuple[ClickHouseMode, ...] = get_args(ClickHouseMode)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One row of `liveward stack status`: a service, its PID (None if none), where it is."""

    service: str
    pid: int | None
    address: str
    healthy: bool


@dataclass(frozen=True, slots=True)
class StackRecord:
    """What `up` started, kept in `state_dir/stack.json` so another process can find it."""

    backend: Literal["local", "docker"]
    brokers: int
    clickhouse: ClickHouseMode
    kafka: dict[str, Any]
    containers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.brokers} broker(s) and {self.clickhouse} ClickHouse ({self.backend})"


class Stack:
    """Kafka (1 or 3 nodes) and ClickHouse (embedded chdb or a server) for one state dir.

    `settings.stack` picks local processes or Docker containers. `up` is idempotent: when
    the same layout is already up and healthy it only checks readiness.
    """

    def __init__(self, settings: Settings) -> None:
        # Services run in folders of their own, where a relative state dir would point elsewhere.
        self.settings = settings.model_copy(update={"state_dir": settings.state_dir.resolve()})
        self.record_path = self.settings.state_dir / "stack.json"

    def up(
        self, brokers: int | None = None, clickhouse: ClickHouseMode | None = None
    ) -> list[ServiceStatus]:
        """Start what is not running yet and wait until it answers; returns the status rows.

        Raises StackError when the state dir already runs another layout, and the
        PortInUse/MissingPrerequisite/NotReady errors of the services it starts.
        """
        brokers = brokers or self.settings.kafka.brokers
        clickhouse = clickhouse or self.settings.clickhouse.backend
        if clickhouse not in CLICKHOUSE_MODES:
            raise StackError(f"unknown ClickHouse mode {clickhouse!r}", reason="bad-settings")
        previous = self.record()
        record = StackRecord(
            backend=self.settings.stack,
            brokers=brokers,
            clickhouse=clickhouse,
            kafka=self.settings.kafka.model_copy(update={"brokers": brokers}).model_dump(
                mode="json"
            ),
        )
        if previous is not None and _layout(previous) != _layout(record):
            if any(row.pid is not None or row.healthy for row in self.status()):
                raise StackError(
                    f"the stack in {self.settings.state_dir} is already up with "
                    f"{previous.describe()}; run `liveward stack down` first",
                    reason="stack-already-up",
                )
        elif previous is not None:
            record = StackRecord(**{**asdict(record), "containers": previous.containers})
        # Written before starting, so `down` can clean up after a start that failed halfway.
        self._write_record(record)
        if record.backend == "docker":
            from infra.docker import DockerStack

            containers = DockerStack(self._settings_for(record)).up(
                brokers, clickhouse, running=record.containers
            )
            self._write_record(StackRecord(**{**asdict(record), "containers": containers}))
        else:
            settings = self._settings_for(record)
            KafkaCluster(settings).start()
            if clickhouse == "server":
                ClickHouseServer(settings).start()
        return self.status()

    def status(self) -> list[ServiceStatus]:
        """Status rows of what the last `up` started; empty if the stack was never brought up."""
        record = self.record()
        if record is None:
            return []
        settings = self._settings_for(record)
        if record.backend == "docker":
            from infra.docker import DockerStack

            return DockerStack(settings).status(record.containers)
        rows = [
            ServiceStatus(f"kafka-{node.node}", node.pid, node.address, node.healthy)
            for node in KafkaCluster(settings).status()
        ]
        if record.clickhouse == "server":
            server = ClickHouseServer(settings)
            ch = settings.clickhouse
            rows.append(
                ServiceStatus(
                    "clickhouse",
                    server.process.pid(),
                    f"{ch.host}:{ch.native_port} (http {ch.http_port})",
                    server.is_running() and server.ready(),
                )
            )
        else:
            # chdb runs inside whichever process opens the path: nothing to start or ping.
            rows.append(
                ServiceStatus(
                    "clickhouse (embedded chdb)",
                    None,
                    str(settings.chdb_path),
                    importlib.util.find_spec("chdb") is not None,
                )
            )
        return rows

    def down(self) -> list[str]:
        """Stop everything this state dir's stack started (by PID or container id).

        Returns the names of the services that were running. Without a record it stops
        whatever the current settings' PID files name.
        """
        record = self.record()
        settings = self._settings_for(record) if record is not None else self.settings
        stopped: list[str] = []
        if record is not None and record.backend == "docker":
            from infra.docker import DockerStack

            stopped += DockerStack(settings).down(record.containers)
        else:
            stopped += [f"kafka-{n}" for n in KafkaCluster(settings).stop()]
            if ClickHouseServer(settings).stop():
                stopped.append("clickhouse")
        self.record_path.unlink(missing_ok=True)
        return stopped

    def record(self) -> StackRecord | None:
        try:
            raw = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, OSError) as exc:
            raise StackError(
                f"{self.record_path} is unreadable; remove it and run `liveward stack down`",
                reason="bad-stack-record",
            ) from exc
        try:
            return StackRecord(**raw)
        except TypeError as exc:
            raise StackError(
                f"{self.record_path} was written by another liveward version; remove it",
                reason="bad-stack-record",
            ) from exc

    def _write_record(self, record: StackRecord) -> None:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.record_path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(asdict(record), indent=2))
        staging.replace(self.record_path)

    def _settings_for(self, record: StackRecord) -> Settings:
        # Ports come from the record, so status and down find what up started even when
        # called with other LIVEWARD_KAFKA__* variables.
        return self.settings.model_copy(
            update={
                "kafka": KafkaSettings.model_validate(record.kafka),
                "clickhouse": self.settings.clickhouse.model_copy(
                    update={"backend": record.clickhouse}
                ),
            }
        )


def _layout(record: StackRecord) -> tuple[str, int, str]:
    return record.backend, record.brokers, record.clickhouse
