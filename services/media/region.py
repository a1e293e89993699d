"""Every process of one simulated region, as managed processes with PID files named by region.

Per region: an ingest point, a hot-hot pair of packagers (a, b), an origin, and one edge
per CDN. Each is `python -m services.media ROLE` with the settings in its environment;
PID files are `<state_dir>/pids/media-<region>-<role>.pid`, so a drill (or another
`liveward regions` invocation) can kill every process of a region, one packager, or one
CDN edge, by PID.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from infra.errors import NotReady
from infra.processes import ManagedProcess, ensure_port_free
from liveward.settings import Settings
from liveward.topology import origin_port, pathways
from services.media.edge import PLAYLIST_TTL_S
from services.media.errors import RegionError
from services.media.layout import DEFAULT_CONTENT, MEDIA_PLAYLIST, live_path
from services.media.segments import last_complete_segment

MEDIA_SEQUENCE_TAG = "#EXT-X-MEDIA-SEQUENCE:"

PACKAGERS = ("a", "b")
READY_TIMEOUT_S = 45.0
# A region is ready when its live windows hold this many segments (players join three
# segments behind the live edge; with fewer they would start with a thin buffer).
READY_SEGMENTS = 3


@dataclass(frozen=True, slots=True)
class Member:
    """One process of a region: its role (`ingest`, `packager-a`, `origin`, `edge-cdn-a`...)."""

    region: str
    role: str
    argv: tuple[str, ...]
    process: ManagedProcess
    # Where it listens, for origins and edges.
    url: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """A process of a region as `status` shows it: PID None when it is not running."""

    region: str
    role: str
    pid: int | None
    url: str | None


class RegionProcesses:
    """Start, stop and kill the processes of one region."""

    def __init__(
        self,
        settings: Settings,
        region: str,
        *,
        contents: Sequence[str] = (DEFAULT_CONTENT,),
        lifetime_s: float | None = None,
        playlist_ttl_s: float = PLAYLIST_TTL_S,
        epochs_topic: str | None = None,
    ) -> None:
        if region not in settings.regions:
            raise RegionError(
                f"{region} is not one of the configured regions {', '.join(settings.regions)}",
                reason="unknown-region",
            )
        self.settings = settings
        self.region = region
        self.contents = tuple(contents)
        self.epochs_topic = epochs_topic
        self.members = self._plan(lifetime_s, playlist_ttl_s)

    def _plan(self, lifetime_s: float | None, playlist_ttl_s: float) -> list[Member]:
        host = self.settings.services.host
        common = [arg for content in self.contents for arg in ("--content", content)]
        if lifetime_s is not None:
            common += ["--lifetime-s", str(lifetime_s)]

        def member(role: str, args: list[str], port: int | None = None) -> Member:
            name = f"media-{self.region}-{role}"
            pids = self.settings.state_dir / "pids"
            argv = (sys.executable, "-m", "services.media", *args, "--region", self.region, *common)
            return Member(
                self.region,
                role,
                argv,
                ManagedProcess(name, pids / f"{name}.pid", self.settings.log_dir / f"{name}.log"),
                None if port is None else f"http://{host}:{port}",
                port,
            )

        members = [member("ingest", ["ingest"])]
        keys = [] if self.epochs_topic is None else ["--epochs-topic", self.epochs_topic]
        members += [member(f"packager-{n}", ["packager", "--name", n, *keys]) for n in PACKAGERS]
        members.append(member("origin", ["origin"], origin_port(self.settings, self.region)))
        for path in pathways(self.settings):
            if path.region == self.region:
                members.append(
                    member(
                        f"edge-{path.cdn}",
                        ["edge", "--cdn", path.cdn, "--playlist-ttl-s", str(playlist_ttl_s)],
                        path.edge_port,
                    )
                )
        return members

    def member(self, role: str) -> Member:
        for candidate in self.members:
            if candidate.role == role:
                return candidate
        roles = ", ".join(m.role for m in self.members)
        raise RegionError(
            f"{self.region} has no process {role!r} ({roles})", reason="unknown-process"
        )

    def start(self, *, ready_timeout: float = READY_TIMEOUT_S) -> None:
        """Start every process not already running, then wait until every edge serves live
        playlists of every content (ingest, packagers, Kafka and origin all work)."""
        for member in self.members:
            self.start_member(member.role)
        self.wait_ready(ready_timeout)

    def start_member(self, role: str) -> int:
        """Start one process (again, after a drill killed it); its PID."""
        member = self.member(role)
        if (pid := member.process.pid()) is not None:
            return pid
        if member.port is not None:
            ensure_port_free(self.settings.services.host, member.port, member.process.name)
        env = {**os.environ, **self.settings.as_env(), "LIVEWARD_REGION": self.region}
        return member.process.start(member.argv, env=env)

    def edge_urls(self) -> list[str]:
        return [m.url for m in self.members if m.role.startswith("edge-") and m.url is not None]

    def wait_ready(self, timeout: float) -> None:
        """Wait until every edge serves a live window of every content that is current
        (its newest segment is the newest the clock allows, or the one before) and holds
        READY_SEGMENTS segments; NotReady if a process exits or time runs out."""
        deadline = time.monotonic() + timeout
        pending = [
            f"{url}{live_path(content, MEDIA_PLAYLIST)}"
            for url in self.edge_urls()
            for content in self.contents
        ]
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for member in self.members:
                    if not member.process.is_running():
                        raise NotReady(
                            f"{member.process.name} exited during start-up:\n"
                            f"{member.process.log_tail()}"
                        )
                pending = [url for url in pending if not self._live(client, url)]
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    raise NotReady(
                        f"{self.region} not serving {pending[0]} within {timeout:.0f}s:\n"
                        f"{self.member('origin').process.log_tail()}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM every process, edges first (as a region is drained), ingest last."""
        for member in reversed(self.members):
            member.process.stop()

    def kill(self) -> list[str]:
        """SIGKILL every process of the region at once (a region loss); the roles killed."""
        return [m.role for m in self.members if m.process.kill()]

    def kill_packager(self, name: str) -> bool:
        return self.member(f"packager-{name}").process.kill()

    def kill_edge(self, cdn: str) -> bool:
        return self.member(f"edge-{cdn}").process.kill()

    def status(self) -> list[MemberStatus]:
        return [MemberStatus(m.region, m.role, m.process.pid(), m.url) for m in self.members]

    def _live(self, client: httpx.Client, url: str) -> bool:
        try:
            response = client.get(url)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        lines = response.text.splitlines()
        sequence = next(
            (int(line.split(":", 1)[1]) for line in lines if line.startswith(MEDIA_SEQUENCE_TAG)),
            None,
        )
        count = sum(1 for line in lines if line and not line.startswith("#"))
        if sequence is None or count == 0:
            return False
        media = self.settings.media
        newest = last_complete_segment(time.time(), media.segment_seconds)
        # ffmpeg finishes a segment only when the next chunk arrives: one more behind.
        behind = 2 if media.source == "ffmpeg" else 1
        enough = min(READY_SEGMENTS, media.playlist_segments)
        return sequence + count - 1 >= newest - behind and count >= enough


def regions_of(
    settings: Settings,
    regions: Sequence[str] | None = None,
    *,
    contents: Sequence[str] = (DEFAULT_CONTENT,),
    lifetime_s: float | None = None,
    epochs_topic: str | None = None,
) -> list[RegionProcesses]:
    """RegionProcesses for the named regions (default: every configured region)."""
    return [
        RegionProcesses(
            settings, region, contents=contents, lifetime_s=lifetime_s, epochs_topic=epochs_topic
        )
        for region in (regions or settings.regions)
    ]


def start_all(
    regions: Sequence[RegionProcesses], *, ready_timeout: float = READY_TIMEOUT_S
) -> None:
    """Start every missing process of every region, then wait until all are ready (the
    regions come up side by side rather than one after the other)."""
    for region in regions:
        for member in region.members:
            region.start_member(member.role)
    for region in regions:
        region.wait_ready(ready_timeout)


@contextmanager
def running_regions(
    settings: Settings,
    regions: Sequence[str] | None = None,
    *,
    contents: Sequence[str] = (DEFAULT_CONTENT,),
    lifetime_s: float | None = None,
    ready_timeout: float = READY_TIMEOUT_S,
    epochs_topic: str | None = None,
) -> Iterator[list[RegionProcesses]]:
    """Every process of the given regions up for the block, then stopped by PID, pass or fail.

    The topics must exist (`apply_topics`) and Kafka must be reachable. With
    `media.source="ffmpeg"` a key epoch must be in force on `epochs_topic` (default
    `keys.epochs`), or the packagers have no key to encrypt with and never get ready.
    """
    started = regions_of(
        settings, regions, contents=contents, lifetime_s=lifetime_s, epochs_topic=epochs_topic
    )
    try:
        start_all(started, ready_timeout=ready_timeout)
        yield started
    finally:
        for region in started:
            region.stop()
