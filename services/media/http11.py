"""A small asyncio HTTP/1.1 client with keep-alive connection pools, for players and edges.

httpx.AsyncClient answered ~500 requests/s on these machines where a bare asyncio stream
answered ~6,600 against the same server; thousands of simulated players need the latter.
It speaks only what our origins, edges, steering and bridge answer: Content-Length or
chunked bodies, keep-alive, plain http on loopback.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.media.errors import HttpFailure

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response; header names are lower case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@functools.lru_cache(maxsize=8192)
def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, request target) of an http URL; HttpFailure `bad-url` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise HttpFailure(f"only http:// URLs are supported, not {url!r}", reason="bad-url")
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return parts.hostname, parts.port or 80, target


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class _HostPool:
    """Idle keep-alive connections to one host:port, and a cap on how many are open."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host = host
        self.port = port
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(limit)

    def take_idle(self) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if not connection.writer.is_closing() and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    async def open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, limit=MAX_HEAD_BYTES
            )
        except ConnectionRefusedError as exc:
            raise HttpFailure(
                f"{self.host}:{self.port} refused the connection", reason="connect-refused"
            ) from exc
        except OSError as exc:
            raise HttpFailure(
                f"cannot connect to {self.host}:{self.port}: {exc}", reason="connect-failed"
            ) from exc
        return _Connection(reader, writer)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


class HttpClient:
    """GET and POST over pooled keep-alive connections, each exchange bounded by a timeout.

    Failures raise HttpFailure with a reason: `connect-refused`, `connect-failed`,
    `timeout`, `connection-lost`, `bad-response`, `bad-url`. A request on a reused
    connection that the server had already closed is retried once on a new one.
    """

    def __init__(
        self, *, max_per_host: int = 64, timeout: float = 2.0, user_agent: str = "liveward"
    ) -> None:
        self._pools: dict[tuple[str, int], _HostPool] = {}
        self._max_per_host = max_per_host
        self._timeout = timeout
        self._user_agent = user_agent

    async def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> Response:
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeout: float | None = None,
    ) -> Response:
        host, port, target = split_url(url)
        pool = self._pools.get((host, port))
        if pool is None:
            pool = self._pools[(host, port)] = _HostPool(host, port, self._max_per_host)
        head = self._head(method, host, port, target, headers, body)
        try:
            async with asyncio.timeout(timeout if timeout is not None else self._timeout):
                async with pool.slots:
                    connection = pool.take_idle()
                    if connection is not None:
                        try:
                            return await self._exchange(pool, connection, method, head, body)
                        except _StaleConnection:
                            pass
                    connection = await pool.open()
                    try:
                        return await self._exchange(pool, connection, method, head, body)
                    except _StaleConnection as exc:
                        raise HttpFailure(
                            f"{host}:{port} closed the connection without answering",
                            reason="connection-lost",
                        ) from exc
        except TimeoutError as exc:
            raise HttpFailure(f"{method} {url} timed out", reason="timeout") from exc

    def _head(
        self,
        method: str,
        host: str,
        port: int,
        target: str,
        headers: Mapping[str, str] | None,
        body: bytes,
    ) -> bytes:
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {host}:{port}",
            f"User-Agent: {self._user_agent}",
        ]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        if headers:
            lines.extend(f"{name}: {value}" for name, value in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _exchange(
        self, pool: _HostPool, connection: _Connection, method: str, head: bytes, body: bytes
    ) -> Response:
        reusable = False
        try:
            connection.writer.write(head + body)
            try:
                raw_head = await connection.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _StaleConnection from exc
                raise HttpFailure(
                    "the response head was cut off", reason="connection-lost"
                ) from exc
            except ConnectionResetError as exc:
                raise _StaleConnection from exc
            except asyncio.LimitOverrunError as exc:
                raise HttpFailure("the response head is too large", reason="bad-response") from exc
            status, headers, keep_alive = _parse_head(raw_head)
            body_bytes, complete = await _read_body(connection.reader, method, status, headers)
            reusable = keep_alive and complete
            return Response(status, headers, body_bytes)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise HttpFailure(f"connection lost: {exc!r}", reason="connection-lost") from exc
        finally:
            if reusable:
                pool.idle.append(connection)
            else:
                connection.close()

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def _parse_head(raw: bytes) -> tuple[int, dict[str, str], bool]:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise HttpFailure(f"not an HTTP/1.x status line: {lines[0][:80]!r}", reason="bad-response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpFailure(f"malformed header line {line[:80]!r}", reason="bad-response")
        headers[name.strip().lower()] = value.strip()
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return int(code), headers, keep_alive


async def _read_body(
    reader: asyncio.StreamReader, method: str, status: int, headers: Mapping[str, str]
) -> tuple[bytes, bool]:
    """The body and whether the connection is positioned at the next response."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader), True
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise HttpFailure(f"bad Content-Length {length!r}", reason="bad-response")
        return await reader.readexactly(int(length)), True
    body = await reader.read(MAX_BODY_BYTES)
    return body, False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise HttpFailure("malformed chunk size", reason="bad-response") from exc
        if size == 0:
            # Trailers (none expected) end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise HttpFailure("chunked body too large", reason="bad-response")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
