"""The CDN edge: caching, collapsed misses, and how an origin failure shows."""

from __future__ import annotations

import asyncio

from services.media.edge import CachedObject, Edge, EdgeCache, EdgePolicy


class ScriptedOrigin:
    """An origin on a loopback port that counts requests per path."""

    def __init__(self, *, delay: float = 0.0, status: int = 200) -> None:
        self.delay = delay
        self.status = status
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1].decode()
                self.requests.append(path)
                await asyncio.sleep(self.delay)
                body = path.encode()
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: video/mp2t\r\nContent-Length: %d\r\n\r\n%s"
                    % (self.status, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def header(reply_headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return dict(reply_headers)[name]


def test_a_segment_comes_from_the_origin_once_then_from_the_cache() -> None:
    asyncio.run(_segment_cached())


async def _segment_cached() -> None:
    origin = ScriptedOrigin()
    edge = Edge("eu-west", "cdn-a", await origin.start(), EdgePolicy())
    first = await edge.handle("/live/m/seg-7.ts", {})
    second = await edge.handle("/live/m/seg-7.ts", {})
    await origin.stop()
    assert first.status == second.status == 200
    assert first.body == second.body == b"/live/m/seg-7.ts"
    assert header(first.headers, b"x-cache") == b"MISS"
    assert header(second.headers, b"x-cache") == b"HIT"
    assert header(second.headers, b"x-liveward-pathway") == b"eu-west.cdn-a"
    assert header(second.headers, b"content-type") == b"video/mp2t"
    assert origin.requests == ["/live/m/seg-7.ts"]


def test_concurrent_misses_share_one_origin_request() -> None:
    asyncio.run(_collapsed())


async def _collapsed() -> None:
    origin = ScriptedOrigin(delay=0.05)
    edge = Edge("eu-west", "cdn-a", await origin.start(), EdgePolicy())
    replies = await asyncio.gather(*(edge.handle("/live/m/seg-8.ts", {}) for _ in range(50)))
    await origin.stop()
    assert {r.status for r in replies} == {200}
    assert origin.requests == ["/live/m/seg-8.ts"]


def test_live_playlists_expire_quickly() -> None:
    asyncio.run(_playlist_expires())


async def _playlist_expires() -> None:
    origin = ScriptedOrigin()
    edge = Edge("eu-west", "cdn-a", await origin.start(), EdgePolicy(playlist_ttl_s=0.05))
    await edge.handle("/live/m/media.m3u8", {})
    await edge.handle("/live/m/media.m3u8", {})
    await asyncio.sleep(0.1)
    await edge.handle("/live/m/media.m3u8", {})
    await origin.stop()
    assert origin.requests == ["/live/m/media.m3u8", "/live/m/media.m3u8"]


def test_errors_are_passed_on_and_not_cached() -> None:
    asyncio.run(_errors_not_cached())


async def _errors_not_cached() -> None:
    origin = ScriptedOrigin(status=404)
    edge = Edge("eu-west", "cdn-a", await origin.start(), EdgePolicy())
    replies = [await edge.handle("/live/m/seg-9.ts", {}) for _ in range(2)]
    await origin.stop()
    assert [r.status for r in replies] == [404, 404]
    assert len(origin.requests) == 2


def test_a_dead_origin_is_a_502_and_a_slow_one_a_504() -> None:
    asyncio.run(_dead_and_slow())


async def _dead_and_slow() -> None:
    slow = ScriptedOrigin(delay=1.0)
    edge = Edge("eu-west", "cdn-a", await slow.start(), EdgePolicy(upstream_timeout_s=0.1))
    timed_out = await edge.handle("/live/m/media.m3u8", {})
    await slow.stop()
    gone = await edge.handle("/live/m/media.m3u8", {})
    assert timed_out.status == 504
    assert b'"origin-timeout"' in timed_out.body
    assert gone.status == 502
    assert b'"origin-unreachable"' in gone.body


def test_the_cache_evicts_the_least_recently_used() -> None:
    cache = EdgeCache(max_entries=2)
    for path in ("/a", "/b"):
        cache.store(path, CachedObject(200, path.encode(), (), 0.0, 100.0))
    assert cache.fresh("/a", 1.0) is not None
    cache.store("/c", CachedObject(200, b"c", (), 0.0, 100.0))
    assert cache.fresh("/b", 1.0) is None
    assert cache.fresh("/a", 1.0) is not None
    assert cache.fresh("/a", 100.0) is None
    assert len(cache) == 1
