"""A CDN edge for one (region, CDN): a caching reverse proxy in front of the region's origin.

Live playlists are cached for a fraction of a segment (players must see new segments
quickly), segments for much longer (they never change). Concurrent misses for one object
share a single origin request, as CDNs collapse them. When the origin cannot be reached
the edge answers 502 `origin-unreachable`, when it is too slow 504 `origin-timeout`; only
whole 200 answers are cached, so an origin failure shows at the edge as soon as the
cached playlist expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from liveward.settings import Settings
from liveward.topology import origin_port, pathway_id, pathways
from services.media.asgi import Reply, Scope, ServerMetrics, asgi_app, error_reply, serve_asgi
from services.media.errors import HttpFailure, MediaError
from services.media.http11 import HttpClient
from services.media.runtime import Lifetime

log = logging.getLogger(__name__)

PLAYLIST_TTL_S = 0.5
SEGMENT_TTL_S = 60.0
MAX_ENTRIES = 1024
UPSTREAM_TIMEOUT_S = 1.0
FORWARDED_HEADERS = ("content-type", "cache-control")


@dataclass(frozen=True, slots=True)
class EdgePolicy:
    """How long each kind of object stays fresh, and how long the origin may take."""

    playlist_ttl_s: float = PLAYLIST_TTL_S
    segment_ttl_s: float = SEGMENT_TTL_S
    max_entries: int = MAX_ENTRIES
    upstream_timeout_s: float = UPSTREAM_TIMEOUT_S

    def ttl_of(self, path: str) -> float:
        return self.playlist_ttl_s if path.endswith(".m3u8") else self.segment_ttl_s


@dataclass(frozen=True, slots=True)
class CachedObject:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    stored_at: float
    expires_at: float


class EdgeCache:
    """Fresh 200 answers by path, least recently used evicted first. Pure (time is passed in)."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, CachedObject] = OrderedDict()
        self._max_entries = max_entries

    def fresh(self, path: str, now: float) -> CachedObject | None:
        entry = self._entries.get(path)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[path]
            return None
        self._entries.move_to_end(path)
        return entry

    def store(self, path: str, entry: CachedObject) -> None:
        self._entries[path] = entry
        self._entries.move_to_end(path)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Edge:
    """Serves `/live/...` from its cache or, on a miss, from the origin."""

    def __init__(self, region: str, cdn: str, upstream: str, policy: EdgePolicy) -> None:
        self.pathway = pathway_id(region, cdn)
        self.upstream = upstream
        self.policy = policy
        self.cache = EdgeCache(policy.max_entries)
        self.metrics = ServerMetrics(f"edge-{self.pathway}")
        self._inflight: dict[str, asyncio.Future[CachedObject]] = {}
        self._client: HttpClient | None = None
        self._pathway_header = (b"x-liveward-pathway", self.pathway.encode())

    def app(self) -> object:
        return asgi_app(self.handle, self.metrics, lambda: True)

    async def handle(self, path: str, _scope: Scope) -> Reply:
        if not path.startswith("/live/"):
            return error_reply(404, "not-found", f"no route {path}")
        now = time.monotonic()
        entry = self.cache.fresh(path, now)
        hit = entry is not None
        if entry is None:
            try:
                entry = await self._fill(path)
            except HttpFailure as exc:
                if exc.reason == "timeout":
                    return error_reply(
                        504,
                        "origin-timeout",
                        f"the origin did not answer within {self.policy.upstream_timeout_s}s",
                    )
                return error_reply(
                    502, "origin-unreachable", f"the origin cannot be reached ({exc.reason})"
                )
        age = max(0, int(now - entry.stored_at))
        headers = [
            *entry.headers,
            self._pathway_header,
            (b"x-cache", b"HIT" if hit else b"MISS"),
            (b"age", b"%d" % age),
        ]
        return Reply(entry.status, entry.body, headers)

    async def _fill(self, path: str) -> CachedObject:
        """One origin request per path at a time; everyone else waiting on it shares it."""
        pending = self._inflight.get(path)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedObject] = asyncio.get_running_loop().create_future()
        self._inflight[path] = future
        try:
            entry = await self._fetch(path)
        except MediaError as exc:
            _fail(future, exc)
            raise
        except BaseException:
            _fail(future, HttpFailure("the origin request was cancelled", reason="connection-lost"))
            raise
        else:
            future.set_result(entry)
            return entry
        finally:
            del self._inflight[path]

    async def _fetch(self, path: str) -> CachedObject:
        if self._client is None:
            self._client = HttpClient(
                timeout=self.policy.upstream_timeout_s, user_agent=f"liveward-edge {self.pathway}"
            )
        response = await self._client.get(self.upstream + path)
        now = time.monotonic()
        headers = tuple(
            (name.encode(), response.headers[name].encode())
            for name in FORWARDED_HEADERS
            if name in response.headers
        )
        ttl = self.policy.ttl_of(path) if response.status == 200 else 0.0
        entry = CachedObject(response.status, response.body, headers, now, now + ttl)
        if ttl > 0:
            self.cache.store(path, entry)
        return entry


def _fail(future: asyncio.Future[CachedObject], exc: BaseException) -> None:
    future.set_exception(exc)
    # Waiters re-raise it; mark it retrieved so a failure nobody waited for is not logged.
    future.exception()


def run_edge(
    settings: Settings, region: str, cdn: str, lifetime: Lifetime, policy: EdgePolicy
) -> None:
    """Serve the (region, CDN) edge on its port until SIGTERM (or the lifetime ends)."""
    wanted = pathway_id(region, cdn)
    match = [p for p in pathways(settings) if p.id == wanted]
    if not match:
        raise MediaError(f"no pathway {wanted} in the settings", reason="unknown-pathway")
    upstream = f"http://{settings.services.host}:{origin_port(settings, region)}"
    edge = Edge(region, cdn, upstream, policy)
    lifetime.terminate_self_at_deadline()
    log.info("edge %s on %s:%d -> %s", wanted, settings.services.host, match[0].edge_port, upstream)
    serve_asgi(edge.app(), settings.services.host, match[0].edge_port, on_stop=lifetime.stop.set)
