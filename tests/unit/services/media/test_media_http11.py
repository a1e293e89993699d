"""The players' and edges' HTTP client against a scripted asyncio server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from services.media.errors import HttpFailure
from services.media.http11 import HttpClient, split_url

Responder = Callable[[bytes], Awaitable[bytes | None]]


async def serve(respond: Responder) -> tuple[asyncio.Server, int, list[int]]:
    """A server that answers each request head with respond(head); None closes the
    connection. Returns the server, its port and how many connections it accepted."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ]
                if length:
                    await reader.readexactly(length[0])
                answer = await respond(head)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Thing: yes\r\n\r\n%s" % (len(body), body)


def test_urls_split_into_host_port_and_target() -> None:
    assert split_url("http://127.0.0.1:8200/live/a/media.m3u8?CMCD=x") == (
        "127.0.0.1", 8200, "/live/a/media.m3u8?CMCD=x",
    )  # fmt: skip
    with pytest.raises(HttpFailure) as caught:
        split_url("https://example.com/")
    assert caught.value.reason == "bad-url"


def test_keep_alive_reuses_one_connection() -> None:
    asyncio.run(_keep_alive_reuses_one_connection())


async def _keep_alive_reuses_one_connection() -> None:
    async def respond(head: bytes) -> bytes:
        return ok(head.split(b" ")[1])

    server, port, connections = await serve(respond)
    client = HttpClient()
    async with server:
        for path in ("/a", "/b", "/c"):
            response = await client.get(f"http://127.0.0.1:{port}{path}")
            assert response.status == 200
            assert response.body == path.encode()
            assert response.headers["x-thing"] == "yes"
        await client.aclose()
    assert len(connections) == 1


def test_chunked_bodies_are_joined() -> None:
    asyncio.run(_chunked_bodies_are_joined())


async def _chunked_bodies_are_joined() -> None:
    async def respond(_: bytes) -> bytes:
        return (
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )

    server, port, _ = await serve(respond)
    client = HttpClient()
    async with server:
        response = await client.get(f"http://127.0.0.1:{port}/x")
        await client.aclose()
    assert (response.status, response.body) == (404, b"abcde")


def test_a_connection_the_server_closed_is_replaced_once() -> None:
    asyncio.run(_a_connection_the_server_closed_is_replaced_once())


async def _a_connection_the_server_closed_is_replaced_once() -> None:
    answered = 0

    async def respond(_: bytes) -> bytes | None:
        nonlocal answered
        answered += 1
        # The first connection answers once, then closes like an idle keep-alive timeout.
        return ok(b"x") if answered != 2 else None

    server, port, connections = await serve(respond)
    client = HttpClient()
    async with server:
        assert (await client.get(f"http://127.0.0.1:{port}/1")).status == 200
        assert (await client.get(f"http://127.0.0.1:{port}/2")).status == 200
        await client.aclose()
    assert len(connections) == 2


def test_failures_have_reasons() -> None:
    asyncio.run(_failures_have_reasons())


async def _failures_have_reasons() -> None:
    async def never(_: bytes) -> bytes:
        await asyncio.sleep(10)
        return ok(b"")

    server, port, _ = await serve(never)
    client = HttpClient(timeout=0.2)
    async with server:
        with pytest.raises(HttpFailure) as slow:
            await client.get(f"http://127.0.0.1:{port}/slow")
    server.close()
    await server.wait_closed()
    with pytest.raises(HttpFailure) as refused:
        await client.get(f"http://127.0.0.1:{port}/gone")
    await client.aclose()
    assert slow.value.reason == "timeout"
    assert refused.value.reason == "connect-refused"


def test_a_post_carries_its_body() -> None:
    asyncio.run(_a_post_carries_its_body())


async def _a_post_carries_its_body() -> None:
    seen: list[bytes] = []

    async def respond(head: bytes) -> bytes:
        seen.append(head)
        return b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"

    server, port, _ = await serve(respond)
    client = HttpClient()
    async with server:
        response = await client.request("POST", f"http://127.0.0.1:{port}/t?CMCD=a", body=b"{}")
        await client.aclose()
    assert response.status == 202
    assert seen[0].startswith(b"POST /t?CMCD=a HTTP/1.1\r\n")
    assert b"Content-Length: 2" in seen[0]
