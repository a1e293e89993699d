"""The local ClickHouse server (Debian's clickhouse-server): config, start, readiness, stop."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from string import Template
from typing import Any
from xml.sax.saxutils import escape

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError

from infra.errors import MissingPrerequisite, NotReady, StackError
from infra.processes import ManagedProcess, ensure_port_free, port_open
from liveward.settings import Settings

TEMPLATE_DIR = Path(__file__).parent / "clickhouse"
CONFIG_TEMPLATE = TEMPLATE_DIR / "config.xml"
USERS_TEMPLATE = TEMPLATE_DIR / "users.xml"

SERVER_BINARY = "clickhouse-server"
APT_PACKAGES = ("clickhouse-server", "clickhouse-client")
# Debian installs the server under /usr/sbin, which is not on an ordinary user's PATH.
_SBIN_CANDIDATES = (Path("/usr/sbin/clickhouse-server"), Path("/usr/bin/clickhouse-server"))
_APT_TIMEOUT_S = 600


def server_binary(*, install: bool = True) -> str:
    """Path of `clickhouse-server`, installed with apt first when missing and running as root.

    Raises MissingPrerequisite naming the package when it is missing and cannot be installed.
    """
    found = shutil.which(SERVER_BINARY) or next(
        (str(p) for p in _SBIN_CANDIDATES if os.access(p, os.X_OK)), None
    )
    if found is not None:
        return found
    hint = f"apt-get install {' '.join(APT_PACKAGES)}"
    if not install or os.geteuid() != 0:
        raise MissingPrerequisite(
            f"{SERVER_BINARY} is not installed; install the clickhouse-server package "
            f"(`{hint}`) or use the embedded backend (LIVEWARD_CLICKHOUSE__BACKEND=embedded)"
        )
    _apt_install(APT_PACKAGES)
    return server_binary(install=False)


def _apt_install(packages: tuple[str, ...]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        try:
            subprocess.run(
                argv, env=env, check=True, capture_output=True, text=True, timeout=_APT_TIMEOUT_S
            )
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise MissingPrerequisite(
                f"installing {' '.join(packages)} with `{' '.join(argv)}` failed: {detail}"
            ) from exc


class ServerLayout:
    """Where the server's config, data and logs live under the state dir."""

    def __init__(self, settings: Settings) -> None:
        # Absolute: the server runs in its own folder and reads these paths from there.
        self.root = settings.state_dir.resolve() / "clickhouse"
        self.config_path = self.root / "config.xml"
        self.users_path = self.root / "users.xml"
        self.data_dir = self.root / "data"
        self.tmp_dir = self.root / "tmp"
        self.user_files_dir = self.root / "user_files"
        self.format_schema_dir = self.root / "format_schemas"
        self.log_dir = settings.log_dir.resolve()
        self.server_log = self.log_dir / "clickhouse-server.log"
        self.error_log = self.log_dir / "clickhouse-server.err.log"

    def directories(self) -> tuple[Path, ...]:
        return (
            self.root,
            self.data_dir,
            self.tmp_dir,
            self.user_files_dir,
            self.format_schema_dir,
            self.log_dir,
        )


def render_config(settings: Settings, layout: ServerLayout) -> str:
    """The server's config.xml: loopback only, the configured ports, paths in the state dir."""
    ch = settings.clickhouse
    values = {
        "log_dir": layout.log_dir,
        "listen_host": ch.host,
        "native_port": ch.native_port,
        "http_port": ch.http_port,
        "interserver_port": ch.interserver_port,
        "data_dir": layout.data_dir,
        "tmp_dir": layout.tmp_dir,
        "user_files_dir": layout.user_files_dir,
        "format_schema_dir": layout.format_schema_dir,
        "users_config": layout.users_path,
    }
    return Template(CONFIG_TEMPLATE.read_text()).substitute(
        {key: escape(str(value)) for key, value in values.items()}
    )


def render_users(settings: Settings) -> str:
    """The server's users.xml: the configured user, its password stored as SHA-256 only."""
    ch = settings.clickhouse
    if not ch.user.replace("_", "").isalnum():
        raise StackError(
            f"ClickHouse user {ch.user!r} is not a valid XML element name", reason="bad-settings"
        )
    digest = hashlib.sha256(ch.password.get_secret_value().encode()).hexdigest()
    return Template(USERS_TEMPLATE.read_text()).substitute(user=ch.user, password_sha256_hex=digest)


class ClickHouseServer:
    """Debian's clickhouse-server run as a background process with liveward's own config.

    Only the native (TCP), HTTP and interserver ports are opened, all on the configured
    loopback host. Stopping signals only the PID this class recorded.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clickhouse = settings.clickhouse
        self.layout = ServerLayout(settings)
        # stdout/stderr only carry what the server prints before its logger is set up.
        self.process = ManagedProcess(
            name="clickhouse",
            pid_file=settings.state_dir / "pids" / "clickhouse.pid",
            log_file=settings.log_dir / "clickhouse-server.out",
        )

    @property
    def ports(self) -> dict[str, int]:
        ch = self.clickhouse
        return {"native": ch.native_port, "http": ch.http_port, "interserver": ch.interserver_port}

    def argv(self) -> list[str]:
        return [server_binary(), f"--config-file={self.layout.config_path}"]

    def write_configs(self) -> None:
        """Render config.xml and users.xml and create every directory they name."""
        for directory in self.layout.directories():
            directory.mkdir(parents=True, exist_ok=True)
        self.layout.users_path.write_text(render_users(self.settings))
        self.layout.config_path.write_text(render_config(self.settings, self.layout))

    def is_running(self) -> bool:
        """True if the process this class started is alive (ready or not)."""
        return self.process.is_running()

    def start(self, timeout: float = 30.0) -> float:
        """Start the server unless it already runs, and wait until it answers `SELECT 1`.

        Returns the seconds it took. Raises PortInUse before starting if a port is taken,
        MissingPrerequisite without the server package, NotReady (with the log tail) when
        it exits or does not answer in time; on failure the process this call started is
        stopped again.
        """
        began = time.monotonic()
        if self.is_running():
            self.wait_ready(timeout)
            return time.monotonic() - began
        argv = self.argv()
        for name, port in self.ports.items():
            ensure_port_free(self.clickhouse.host, port, f"ClickHouse ({name})")
        self.write_configs()
        try:
            self.process.start(argv, cwd=self.layout.root)
            self.wait_ready(timeout - (time.monotonic() - began))
        except BaseException:
            self.process.stop()
            raise
        return time.monotonic() - began

    def wait_ready(self, timeout: float) -> None:
        """Block until `SELECT 1` succeeds; NotReady if the process exits or time runs out."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if not self.is_running():
                raise NotReady(
                    f"ClickHouse exited while starting\n{self.log_tail()}",
                    reason="clickhouse-not-ready",
                )
            if self.ready():
                return
            if time.monotonic() >= deadline:
                raise NotReady(
                    f"ClickHouse at {self.clickhouse.host}:{self.clickhouse.native_port} did "
                    f"not answer SELECT 1 in {timeout:.0f} s\n{self.log_tail()}",
                    reason="clickhouse-not-ready",
                )
            time.sleep(0.05)

    def ready(self, timeout: float = 2.0) -> bool:
        """True if the server answers `SELECT 1` over the native protocol."""
        ch = self.clickhouse
        # Probe the port first: the driver logs a traceback for every refused connection.
        if not port_open(ch.host, ch.native_port):
            return False
        client = Client(
            host=ch.host,
            port=ch.native_port,
            user=ch.user,
            password=ch.password.get_secret_value(),
            connect_timeout=timeout,
            send_receive_timeout=timeout,
            sync_request_timeout=timeout,
        )
        try:
            return bool(client.execute("SELECT 1") == [(1,)])
        except (DriverError, OSError, EOFError):
            return False
        finally:
            client.disconnect()

    def stop(self) -> bool:
        """Stop the server this class started; True if one was running."""
        return self.process.stop()

    def kill(self) -> bool:
        """SIGKILL the server, as a crash; `start()` brings it back."""
        return self.process.kill()

    def status(self) -> dict[str, Any]:
        ch = self.clickhouse
        return {
            "pid": self.process.pid(),
            "running": self.is_running(),
            "ready": self.ready(),
            "host": ch.host,
            **{f"{name}_port": port for name, port in self.ports.items()},
            "config": str(self.layout.config_path),
            "data_dir": str(self.layout.data_dir),
            "log": str(self.layout.server_log),
        }

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's error log and console output, for error messages."""
        parts: list[str] = []
        for path in (self.layout.error_log, self.process.log_file):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            parts += [f"--- {path}", "\n".join(text.splitlines()[-lines:])]
        return "\n".join(parts)
