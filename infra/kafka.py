"""The local Apache Kafka cluster: jars from Maven Central, KRaft configs, start and stop."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from infra.errors import MissingPrerequisite, NotReady, StackError
from infra.processes import ManagedProcess, ensure_port_free, port_open
from liveward.settings import KafkaSettings, Settings

KAFKA_DIR = Path(__file__).parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
BROKER_LOG4J2 = KAFKA_DIR / "log4j2.properties"
TOOLS_LOG4J2 = KAFKA_DIR / "tools-log4j2.properties"

MIN_JAVA = 17
INSTALL_HINT = "apt-get install openjdk-17-jre-headless maven"
STORAGE_TOOL = "kafka.tools.StorageTool"
BROKER_MAIN = "kafka.Kafka"

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_MARKER = ".complete"
_TOOL_HEAP_MB = 256


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version pinned in the pom's `kafka.version` property."""
    version = ET.parse(pom).getroot().findtext("m:properties/m:kafka.version", namespaces=_POM_NS)
    if not version:
        raise StackError(f"{pom} does not pin kafka.version", reason="bad-pom")
    return version.strip()


@functools.cache
def java_binary() -> str:
    """Path of a `java` that is at least version 17; MissingPrerequisite otherwise."""
    java = shutil.which("java")
    if java is None:
        raise MissingPrerequisite(
            f"java {MIN_JAVA}+ is needed to run Kafka but is not on PATH; "
            f"install it with `{INSTALL_HINT}`"
        )
    try:
        probe = subprocess.run(
            [java, "-version"], check=False, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MissingPrerequisite(f"{java} -version failed; install `{INSTALL_HINT}`") from exc
    major = java_major_version(probe.stderr + probe.stdout)
    if major is None or major < MIN_JAVA:
        raise MissingPrerequisite(
            f"Kafka needs java {MIN_JAVA}+, {java} is {major or 'unknown'}; "
            f"install it with `{INSTALL_HINT}`"
        )
    return java


def java_major_version(version_output: str) -> int | None:
    """The major version from `java -version` output (`1.8.0` counts as 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def runtime_libs(cache_dir: Path, *, pom: Path = POM) -> Path:
    """The folder of runtime jars for the pinned Kafka, fetched with Maven on first use.

    The marker holds the pom's digest, so an edited pom (a forced slf4j version, say) is
    fetched again into a fresh folder rather than mixed with stale jars.
    """
    home = cache_dir / f"kafka-{kafka_version(pom)}"
    libs = home / "libs"
    marker = home / _MARKER
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()

    def complete() -> bool:
        return libs.is_dir() and marker.is_file() and marker.read_text().strip() == digest

    if complete():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    # Two processes (a test session and the CLI, say) may both find the cache empty.
    with _locked(home / ".lock"):
        if complete():
            return libs
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
        try:
            _copy_dependencies(pom, staging)
            marker.unlink(missing_ok=True)
            shutil.rmtree(libs, ignore_errors=True)
            staging.rename(libs)
            marker.write_text(f"{digest}\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_dependencies(pom: Path, target: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingPrerequisite(
            f"mvn is needed once to fetch the Kafka jars but is not on PATH; "
            f"install it with `{INSTALL_HINT}`"
        )
    argv = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={target}",
    ]
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            "mvn did not fetch the Kafka jars within 15 minutes", reason="fetch-failed"
        ) from exc
    if result.returncode != 0 or not any(target.glob("kafka_2.13-*.jar")):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise StackError(
            f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n{tail}",
            reason="fetch-failed",
        )


def server_properties(kafka: KafkaSettings, node: int, data_dir: PurePath) -> dict[str, str]:
    """The broker config of one combined broker+controller node of a static KRaft quorum."""
    host = kafka.host
    voters = ",".join(f"{n}@{host}:{kafka.controller_port_of(n)}" for n in range(kafka.brokers))
    replicas, min_isr = kafka.replication_factor, kafka.min_insync_replicas
    entries: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": node,
        "controller.quorum.voters": voters,
        "listeners": (
            f"PLAINTEXT://{host}:{kafka.broker_port(node)},"
            f"CONTROLLER://{host}:{kafka.controller_port_of(node)}"
        ),
        "advertised.listeners": f"PLAINTEXT://{host}:{kafka.broker_port(node)}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": data_dir,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Fewer internal partitions: creating them is what the first group join waits for.
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.num.partitions": 10,
        "group.initial.rebalance.delay.ms": 0,
        # Topics come from the catalog with their partition count; a typo must fail loudly.
        "auto.create.topics.enable": "false",
        "unclean.leader.election.enable": "false",
        "log.segment.bytes": 16 * 1024 * 1024,
        "log.retention.check.interval.ms": 60_000,
        # The default 128 MiB dedupe buffer would take a quarter of a small local heap.
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
        "log.cleaner.threads": 1,
        # Two cores: the defaults (3 network, 8 I/O threads) only add contention.
        "num.network.threads": 2,
        "num.io.threads": 4,
        # A killed node is fenced, and its partitions move, after 6 s instead of 9 s.
        "broker.session.timeout.ms": 6_000,
        "broker.heartbeat.interval.ms": 1_000,
    }
    return {key: str(value) for key, value in entries.items()}


def render_server_properties(kafka: KafkaSettings, node: int, data_dir: Path) -> str:
    """The `server.properties` file text for one node."""
    return "".join(
        f"{key}={value}\n" for key, value in server_properties(kafka, node, data_dir).items()
    )


# From Kafka's bin/kafka-run-class.sh (KAFKA_JVM_PERFORMANCE_OPTS).
BROKER_GC_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One Kafka node as seen from outside: its PID (None if down) and whether it accepts TCP."""

    node: int
    pid: int | None
    address: str
    reachable: bool

    @property
    def healthy(self) -> bool:
        return self.pid is not None and self.reachable


class KafkaCluster:
    """A KRaft cluster of `settings.kafka.brokers` combined nodes run from the cached jars.

    Each broker count gets its own data folder (`state_dir/kafka/brokers-N/node-i`), so a
    one-node and a three-node cluster can take turns in one state dir without mixing data.
    """

    def __init__(self, settings: Settings) -> None:
        # Nodes run in their own folder, so every path handed to the JVM must be absolute.
        self.settings = settings.model_copy(
            update={
                "state_dir": settings.state_dir.resolve(),
                "cache_dir": settings.cache_dir.resolve(),
            }
        )
        self.kafka = settings.kafka
        self.layout_dir = self.settings.state_dir / "kafka" / f"brokers-{self.kafka.brokers}"

    @property
    def nodes(self) -> range:
        return range(self.kafka.brokers)

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    def node_dir(self, node: int) -> Path:
        return self.layout_dir / f"node-{node}"

    def properties_path(self, node: int) -> Path:
        return self.node_dir(node) / "server.properties"

    def log_file(self, node: int) -> Path:
        """Where the broker's log4j2 output goes."""
        return self.settings.log_dir / f"kafka-{node}.log"

    def process(self, node: int) -> ManagedProcess:
        # stdout/stderr only carry what the JVM prints before or outside log4j2.
        return ManagedProcess(
            name=f"kafka-{node}",
            pid_file=self.settings.state_dir / "pids" / f"kafka-{node}.pid",
            log_file=self.settings.log_dir / f"kafka-{node}.out",
        )

    def classpath(self) -> str:
        """The JVM classpath of the Kafka runtime (fetches the jars on first use)."""
        return f"{runtime_libs(self.settings.cache_dir)}/*"

    def tool_argv(self, main_class: str, *args: str, heap_mb: int = _TOOL_HEAP_MB) -> list[str]:
        """argv running a Kafka command-line tool (e.g. ProducerPerformance) on this runtime."""
        return [
            java_binary(),
            f"-Xmx{heap_mb}m",
            f"-Dlog4j2.configurationFile={TOOLS_LOG4J2}",
            "-cp",
            self.classpath(),
            main_class,
            *args,
        ]

    def broker_argv(self, node: int) -> list[str]:
        heap = self.kafka.heap_mb
        return [
            java_binary(),
            f"-Xmx{heap}m",
            f"-Xms{heap}m",
            # The GC settings Kafka's own start scripts use: short pauses (a request that
            # waits for the broker's acknowledgement waits through them).
            *BROKER_GC_FLAGS,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={BROKER_LOG4J2}",
            f"-Dliveward.kafka.log={self.log_file(node)}",
            "-cp",
            self.classpath(),
            BROKER_MAIN,
            str(self.properties_path(node)),
        ]

    def is_running(self) -> bool:
        """True if every node's recorded process is alive."""
        return all(self.process(n).is_running() for n in self.nodes)

    def start(self, timeout: float = 90.0) -> float:
        """Start the nodes not already running and wait until all brokers are in the metadata.

        Returns the seconds it took. Raises PortInUse before starting anything if a port is
        taken, MissingPrerequisite without java/mvn, NotReady (with the log tail) on timeout;
        on failure the nodes this call started are stopped again.
        """
        began = time.monotonic()
        java_binary()
        runtime_libs(self.settings.cache_dir)
        missing = [n for n in self.nodes if not self.process(n).is_running()]
        for node in missing:
            host = self.kafka.host
            ensure_port_free(host, self.kafka.broker_port(node), f"Kafka node {node} (PLAINTEXT)")
            ensure_port_free(
                host, self.kafka.controller_port_of(node), f"Kafka node {node} (CONTROLLER)"
            )
        try:
            self._write_configs()
            self._format(missing)
            for node in missing:
                self.process(node).start(self.broker_argv(node), cwd=self.node_dir(node))
            self.wait_ready(timeout - (time.monotonic() - began))
        except BaseException:
            self._stop_nodes(missing)
            raise
        return time.monotonic() - began

    def wait_ready(self, timeout: float) -> None:
        """Block until every broker is registered and unfenced; NotReady if a node dies first."""
        deadline = time.monotonic() + max(timeout, 0.0)
        admin: AdminClient | None = None
        seen: set[int] = set()
        while True:
            for node in self.nodes:
                if not self.process(node).is_running():
                    raise NotReady(
                        f"Kafka node {node} exited while starting\n{self.log_tail(node)}",
                        reason="kafka-not-ready",
                    )
            # Ask only once something listens: librdkafka is noisy about refused connections.
            if admin is None and any(self._broker_port_open(n) for n in self.nodes):
                admin = admin_client(self.bootstrap_servers)
            if admin is not None:
                seen = registered_brokers(admin, timeout=1.0)
                if len(seen) == self.kafka.brokers:
                    return
            if time.monotonic() >= deadline:
                tails = "\n".join(self.log_tail(n) for n in self.nodes)
                raise NotReady(
                    f"Kafka at {self.bootstrap_servers} did not show {self.kafka.brokers} "
                    f"broker(s) in {timeout:.0f} s (saw {sorted(seen)})\n{tails}",
                    reason="kafka-not-ready",
                )
            time.sleep(0.2)

    def ready(self, timeout: float = 3.0) -> bool:
        """True if the cluster answers metadata with every broker registered."""
        if not any(self._broker_port_open(n) for n in self.nodes):
            return False
        return (
            len(registered_brokers(admin_client(self.bootstrap_servers), timeout=timeout))
            == self.kafka.brokers
        )

    def stop(self) -> list[int]:
        """Stop every node (all at once: a quorum stopped one by one stalls the last node)."""
        return self._stop_nodes(list(self.nodes))

    def kill_node(self, node: int) -> bool:
        """SIGKILL one node, as a crash; `start()` brings it back."""
        return self.process(node).kill()

    def status(self) -> list[NodeStatus]:
        return [
            NodeStatus(
                node=n,
                pid=self.process(n).pid(),
                address=f"{self.kafka.host}:{self.kafka.broker_port(n)}",
                reachable=self._broker_port_open(n),
            )
            for n in self.nodes
        ]

    def log_tail(self, node: int, lines: int = 20) -> str:
        """The last lines of a node's broker log and JVM output, for error messages."""
        parts = [f"--- {self.log_file(node)}", _tail(self.log_file(node), lines)]
        out = self.process(node).log_tail(lines)
        if out:
            parts += [f"--- {self.process(node).log_file}", out]
        return "\n".join(parts)

    def cluster_id(self) -> str:
        """The cluster id, made once by `StorageTool random-uuid` and kept in the state dir."""
        path = self.layout_dir / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        output = self._run_tool(STORAGE_TOOL, "random-uuid")
        cluster_id = output.strip().splitlines()[-1].strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{cluster_id}\n")
        return cluster_id

    def _write_configs(self) -> None:
        for node in self.nodes:
            data = self.node_dir(node) / "data"
            data.mkdir(parents=True, exist_ok=True)
            self.properties_path(node).write_text(render_server_properties(self.kafka, node, data))

    def _format(self, nodes: Sequence[int]) -> None:
        unformatted = [n for n in nodes if not (self.node_dir(n) / "data/meta.properties").exists()]
        if not unformatted:
            return
        cluster_id = self.cluster_id()
        # Each format is a JVM start of about a second; a three-node cold start runs them together.
        with ThreadPoolExecutor(max_workers=len(unformatted)) as pool:
            list(
                pool.map(
                    lambda node: self._run_tool(
                        STORAGE_TOOL,
                        "format",
                        "-t",
                        cluster_id,
                        "-c",
                        str(self.properties_path(node)),
                        "--ignore-formatted",
                    ),
                    unformatted,
                )
            )

    def _run_tool(self, main_class: str, *args: str) -> str:
        argv = self.tool_argv(main_class, *args)
        try:
            result = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"{main_class} {args[0]} hung", reason="kafka-tool-failed") from exc
        if result.returncode != 0:
            raise StackError(
                f"{main_class} {' '.join(args)} failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}",
                reason="kafka-tool-failed",
            )
        return result.stdout

    def _stop_nodes(self, nodes: Sequence[int]) -> list[int]:
        if not nodes:
            return []
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            stopped = list(pool.map(lambda n: self.process(n).stop(timeout=30.0), nodes))
        return [n for n, was_running in zip(nodes, stopped, strict=True) if was_running]

    def _broker_port_open(self, node: int) -> bool:
        return port_open(self.kafka.host, self.kafka.broker_port(node), timeout=0.2)


def admin_client(bootstrap_servers: str) -> AdminClient:
    """A quiet AdminClient for readiness probes (connection errors are expected while starting)."""
    return AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "log_level": 0,
            "socket.connection.setup.timeout.ms": 1_000,
        }
    )


def registered_brokers(admin: AdminClient, *, timeout: float) -> set[int]:
    """Ids of the brokers the cluster reports as registered and unfenced; empty if unreachable."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return set()
    return set(metadata.brokers)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"
