"""The live system as processes: stack, topics, stream processors and per-region services.

Drills, `liveward run` and end-to-end tests bring it up the same way and stop only what
they started, by PID.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.errors import NotReady
from infra.processes import ManagedProcess
from infra.stack import Stack
from liveward.settings import Settings
from liveward.topology import instance_port
from services.access.demo_geo import write_geo_databases
from services.media.region import RegionProcesses, start_all
from streams.topics import apply_topics


@dataclass(frozen=True, slots=True)
class RunningService:
    """One service process of one region."""

    name: str
    region: str
    url: str
    process: ManagedProcess


@dataclass(slots=True)
class LiveSystem:
    """What `live_system` started, with the settings every part was given."""

    settings: Settings
    services: list[RunningService] = field(default_factory=list)
    # The simulated regions' media processes (ingest, packagers, origin, edges).
    media: list[RegionProcesses] = field(default_factory=list)

    def of(self, name: str) -> list[RunningService]:
        return [s for s in self.services if s.name == name]


def with_demo_geo(settings: Settings, directory: Path, policy_file: Path | None = None) -> Settings:
    """Settings whose auth geo databases are the demo ones (written into directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    dbs = write_geo_databases(directory)
    auth = settings.auth.model_copy(
        update={
            "geo_city_db": dbs.city,
            "geo_asn_db": dbs.asn,
            "geo_anonymous_db": dbs.anonymous,
            "policy_file": policy_file or settings.auth.policy_file,
        }
    )
    return settings.model_copy(update={"auth": auth})


def _wait_healthy(url: str, process: ManagedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running():
            raise NotReady(f"{process.name} exited during start-up:\n{process.log_tail()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise NotReady(f"{process.name} not healthy within {timeout:.0f}s:\n{process.log_tail()}")


@contextmanager
def live_system(
    settings: Settings,
    *,
    auth_regions: tuple[str, ...] = (),
    license_regions: tuple[str, ...] = (),
    media_regions: tuple[str, ...] = (),
    steering: bool = False,
    bridge: bool = False,
    worker: bool = True,
    key_rotation: tuple[str, ...] = (),
    keep_stack: bool = False,
    ready_timeout: float = 60.0,
) -> Iterator[LiveSystem]:
    """Bring up the stack (if down), topics, the worker, one auth and one license instance
    per region.

    Auth instance i listens on `instance_port(services.auth_port, i)`; license instance i
    on `instance_port(services.license_port, i)` (gRPC likewise) and fetches the JWKS of
    auth instance 0. `steering` and `bridge` start one steering service and one telemetry
    bridge on their settings ports. Each of `media_regions` gets its media processes
    (ingest, packagers, origin, edges; services.media.region), ready once every edge
    serves a live window. `key_rotation` names contents whose keys a `liveward keys run`
    process rotates (started before the media: ffmpeg packagers encrypt with those keys).
    Everything started here is stopped on exit; a stack that was already up (or
    `keep_stack`) is left up.
    """
    stack = Stack(settings)
    was_up = bool(stack.status()) and all(row.healthy for row in stack.status())
    stack.up()
    started: list[ManagedProcess] = []
    system = LiveSystem(settings)
    pids = settings.state_dir / "pids"
    try:
        apply_topics(settings)
        env = {**os.environ, **settings.as_env()}
        if worker:
            process = ManagedProcess("worker", pids / "worker.pid", settings.log_dir / "worker.log")
            if not process.is_running():
                process.start([sys.executable, "-m", "liveward.cli", "worker"], env=env)
                started.append(process)
        for index, region in enumerate(auth_regions):
            port = instance_port(settings.services.auth_port, index)
            name = f"auth-{region}"
            process = ManagedProcess(name, pids / f"{name}.pid", settings.log_dir / f"{name}.log")
            process.start(
                [sys.executable, "-m", "liveward.cli", "serve", "auth", "--port", str(port)],
                env={**env, "LIVEWARD_REGION": region},
            )
            started.append(process)
            url = f"http://{settings.services.host}:{port}"
            system.services.append(RunningService("auth", region, url, process))
        for index, region in enumerate(license_regions):
            port = instance_port(settings.services.license_port, index)
            grpc_port = instance_port(settings.services.license_grpc_port, index)
            name = f"license-{region}"
            process = ManagedProcess(name, pids / f"{name}.pid", settings.log_dir / f"{name}.log")
            process.start(
                [sys.executable, "-m", "liveward.cli", "serve", "license", "--port", str(port),
                 "--grpc-port", str(grpc_port)],
                env={**env, "LIVEWARD_REGION": region},
            )  # fmt: skip
            started.append(process)
            url = f"http://{settings.services.host}:{port}"
            system.services.append(RunningService("license", region, url, process))
        singles = [
            ("steering", settings.services.steering_port, steering),
            ("bridge", settings.services.bridge_port, bridge),
        ]
        for name, port, wanted in singles:
            if not wanted:
                continue
            process = ManagedProcess(name, pids / f"{name}.pid", settings.log_dir / f"{name}.log")
            process.start(
                [sys.executable, "-m", "liveward.cli", "serve", name, "--port", str(port)],
                env=env,
            )
            started.append(process)
            url = f"http://{settings.services.host}:{port}"
            system.services.append(RunningService(name, settings.region, url, process))
        for service in system.services:
            _wait_healthy(service.url, service.process, ready_timeout)
        if key_rotation:
            process = ManagedProcess("keys", pids / "keys.pid", settings.log_dir / "keys.log")
            contents = [arg for content in key_rotation for arg in ("--content", content)]
            process.start([sys.executable, "-m", "liveward.cli", "keys", "run", *contents], env=env)
            started.append(process)
        system.media = [RegionProcesses(settings, region) for region in media_regions]
        start_all(system.media, ready_timeout=ready_timeout)
        yield system
    finally:
        for media in system.media:
            media.stop()
        for process in reversed(started):
            process.stop()
        if not was_up and not keep_stack:
            stack.down()
