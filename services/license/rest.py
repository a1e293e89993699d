"""The license service over HTTP: ClearKey licenses and HLS AES-128 keys.

The edge is `services.http.create_edge_app` (health, metrics, preflights, 404s, the
error format); the two license routes are answered by `LicenseRoutes`, a plain ASGI
app in front of it that hands every other request to the edge. Measured in process on
the development machine, a route through FastAPI and the edge's `BaseHTTPMiddleware`
cost several times what the license itself costs (checks, keys, events); at 1k
licenses a second on two cores that is the difference between keeping up and not. The
routes keep the edge's conventions: CORS headers on every answer, the edge's request
metrics, 413 before parsing, JSON errors with a reason code.

Both routes are coroutines: the checks are CPU work of a fraction of a millisecond, and
the one wait (Kafka confirming the license record) is awaited on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from prometheus_client import Counter, Histogram

from services.access.client_ip import client_ip, trusted_networks
from services.http import EdgeMetrics, create_edge_app, error_body
from services.license.clearkey import license_response, parse_license_request
from services.license.errors import LicenseError, Refusal
from services.license.service import (
    CLEARKEY_REST,
    HLS_KEY_REST,
    Edge,
    LicenseRequest,
    LicenseService,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CLEARKEY_PATH = "/v1/license/clearkey"
KEYS_PREFIX = "/v1/keys/"
KEYS_ROUTE = "/v1/keys/{content_id:path}/{period}"
# A ClearKey request is a few hundred bytes; nothing bigger is parsed.
MAX_BODY_BYTES = 16_384
MAX_CONTENT_ID = 256
_JSON = b"application/json"
_OCTETS = b"application/octet-stream"
# What every answer of these routes carries: keys must never sit in a cache, and a web
# player reads refusals and the license id across origins.
_ALWAYS = (
    (b"cache-control", b"no-store"),
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Retry-After, X-License-Id"),
)


def bearer_token(header: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header, else None."""
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def parse_period(text: str) -> int:
    """A period number from a URL; `bad-period` (400) when it is not a decimal number."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise LicenseError(Refusal.BAD_REQUEST, "bad-period", f"{text[:40]!r} is not a period")
    return int(text)


def check_content_id(text: str | None) -> str | None:
    """A content id from a request (None: not given); `bad-content-id` when out of bounds."""
    if text is not None and not 0 < len(text) <= MAX_CONTENT_ID:
        raise LicenseError(
            Refusal.BAD_REQUEST, "bad-content-id", f"content ids are 1..{MAX_CONTENT_ID} chars"
        )
    return text


class _Incoming:
    """What the routes read of an HTTP request."""

    __slots__ = ("authorization", "content_length", "forwarded_for", "peer", "query")

    def __init__(self, scope: Scope) -> None:
        self.authorization: str | None = None
        self.content_length: bytes | None = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                # Every header counts: a proxy may add its own instead of appending.
                forwarded.append(value.decode("latin-1"))
            elif name == b"content-length":
                self.content_length = value
        self.forwarded_for = ",".join(forwarded) if forwarded else None
        client = scope.get("client")
        self.peer: str = client[0] if client else ""
        raw_query: bytes = scope.get("query_string", b"")
        self.query = parse_qs(raw_query.decode("latin-1")) if raw_query else {}

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class LicenseRoutes:
    """`POST /v1/license/clearkey` and `GET /v1/keys/{content}/{period}`, as plain ASGI;
    everything else goes on to the edge app."""

    def __init__(
        self,
        edge: FastAPI,
        *,
        service: LicenseService,
        metrics: EdgeMetrics,
        trusted_proxies: Sequence[str],
    ) -> None:
        self.edge = edge
        self.metrics = metrics
        self._service = service
        self._proxies = tuple(trusted_proxies)
        trusted_networks(self._proxies)  # a bad CIDR fails here, at start, not per viewer
        # The labelled series each answer touches, looked up once (`labels()` takes a lock
        # and builds its key on every call).
        self._answered: dict[tuple[str, int], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == CLEARKEY_PATH and method == "POST":
                await self._answer(CLEARKEY_PATH, self._clearkey, scope, receive, send)
                return
            if path.startswith(KEYS_PREFIX) and method == "GET":
                await self._answer(KEYS_ROUTE, self._period_key, scope, receive, send)
                return
        await self.edge(scope, receive, send)

    async def _answer(
        self,
        route: str,
        handler: Callable[[Scope, _Incoming, Receive], Awaitable[tuple[bytes, bytes, str]]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        started = time.perf_counter()
        extra: list[tuple[bytes, bytes]] = []
        try:
            body, content_type, license_id = await handler(scope, _Incoming(scope), receive)
            status = 200
            extra.append((b"x-license-id", license_id.encode()))
        except LicenseError as exc:
            status, content_type = exc.http_status, _JSON
            body = error_body(exc.reason, str(exc))
            if exc.retry_after is not None:
                extra.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
            if exc.refusal is Refusal.UNAUTHENTICATED:
                # RFC 6750: tell the player its bearer token was the problem.
                extra.append(
                    (
                        b"www-authenticate",
                        f'Bearer error="invalid_token", reason="{exc.reason}"'.encode(),
                    )
                )
        await _respond(send, status, body, content_type, extra)
        self._count(route, status).inc()
        self._latency(route).observe(time.perf_counter() - started)

    def _count(self, route: str, status: int) -> Counter:
        counter = self._answered.get((route, status))
        if counter is None:
            metrics = self.metrics
            counter = metrics.requests.labels(metrics.service, route, str(status))
            self._answered[route, status] = counter
        return counter

    def _latency(self, route: str) -> Histogram:
        histogram = self._timed.get(route)
        if histogram is None:
            metrics = self.metrics
            histogram = self._timed[route] = metrics.latency.labels(metrics.service, route)
        return histogram

    def _request(
        self, incoming: _Incoming, edge: Edge, token: str | None, content_id: str | None
    ) -> LicenseRequest:
        return LicenseRequest(
            token=token,
            ip=client_ip(incoming.peer, incoming.forwarded_for, self._proxies),
            edge=edge,
            content_id=check_content_id(content_id),
        )

    async def _clearkey(
        self, scope: Scope, incoming: _Incoming, receive: Receive
    ) -> tuple[bytes, bytes, str]:
        """EME ClearKey: `{"kids": [...], "type": "temporary"}` in, a JWK set out.

        `?content=` asks for another content the token's packages entitle; by default
        the license is for the token's own content.
        """
        asked = parse_license_request(await _body(incoming, receive))
        token = bearer_token(incoming.authorization)
        grant = self._service.clearkey(
            self._request(incoming, CLEARKEY_REST, token, incoming.param("content")), asked.kids
        )
        keys = await grant.keys_when_stored()
        return license_response(keys), _JSON, grant.license_id

    async def _period_key(
        self, scope: Scope, incoming: _Incoming, receive: Receive
    ) -> tuple[bytes, bytes, str]:
        """The raw 16-byte AES-128 key of one period (an HLS `EXT-X-KEY` URI).

        The token comes as `Authorization: Bearer` (hls.js `xhrSetup`) or, for players
        that cannot set headers on key requests, as `?token=` (see the README for what
        a token in a URL costs).
        """
        content_id, _, period = scope["path"][len(KEYS_PREFIX) :].rpartition("/")
        token = bearer_token(incoming.authorization) or incoming.param("token")
        grant = self._service.period_key(
            self._request(incoming, HLS_KEY_REST, token, content_id), parse_period(period)
        )
        (key,) = await grant.keys_when_stored()
        return key.key, _OCTETS, grant.license_id


async def _body(incoming: _Incoming, receive: Receive) -> bytes:
    """The request body, refused (413 `body-too-large`) past MAX_BODY_BYTES."""
    too_large = LicenseError(
        Refusal.PAYLOAD_TOO_LARGE, "body-too-large", f"bodies are limited to {MAX_BODY_BYTES} bytes"
    )
    length = incoming.content_length
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise too_large
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: Iterable[tuple[bytes, bytes]],
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *_ALWAYS,
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_license_app(service: LicenseService, *, trusted_proxies: Sequence[str]) -> LicenseRoutes:
    """The license edge: the two license routes in front of the shared edge app.

    The routes sit outside FastAPI altogether (FastAPI's own per-request middlewares
    showed up in profiles); `.edge` is the FastAPI app behind them.
    """
    edge = create_edge_app("license", max_body_bytes=MAX_BODY_BYTES, ready=service.ready)
    metrics: EdgeMetrics = edge.state.metrics
    for collector in service.metrics.collectors():
        metrics.registry.register(collector)
    return LicenseRoutes(edge, service=service, metrics=metrics, trusted_proxies=trusted_proxies)
