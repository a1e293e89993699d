"""The bridge over HTTP: `POST /v1/telemetry`, its answers and reason codes, its metrics.

The edge is `services.http.create_edge_app` (health, metrics, preflights, 404s, the
error format); `POST /v1/telemetry` is answered by `TelemetryRoute`, a plain ASGI layer
in front of it, as the license service does: FastAPI's routing and the edge's
`BaseHTTPMiddleware` cost about a millisecond a request, which is most of the cost of a
single-sample request. The layer keeps the edge's conventions: CORS headers on every
answer, the edge's request metrics, 413 before parsing, JSON errors with a reason code.

The body is read on the event loop (bounded even without a Content-Length); the bridge
then runs on a worker thread, because it waits for Kafka to confirm and that wait must
not block other requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson
from anyio import to_thread
from fastapi import FastAPI
from prometheus_client import Counter

from services.bridge.bridge import Accepted, TelemetryBridge
from services.bridge.cmcd import CMCD_HEADERS
from services.bridge.errors import BridgeError, KeyStoreError, RateLimited, RequestRejected
from services.bridge.requests import TelemetryRequest
from services.http import EdgeMetrics, create_edge_app, error_body
from streams.errors import DeliveryFailed, ProducerBackpressure, StreamsError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger(__name__)

TELEMETRY_PATH = "/v1/telemetry"
# Kafka unreachable or too slow: come back after this long.
DELIVERY_RETRY_AFTER_S = 1.0
_CMCD_HEADERS = frozenset(name.encode() for name in CMCD_HEADERS)
# What every answer of the route carries: web players read answers across origins.
_ALWAYS = (
    (b"content-type", b"application/json"),
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"Retry-After"),
)


class BridgeMetrics:
    """Sample outcomes and refusals, on the edge's own registry."""

    def __init__(self, edge: EdgeMetrics) -> None:
        self.edge = edge
        self.samples = Counter(
            "liveward_bridge_samples",
            "Telemetry samples by outcome: accepted, or the reason they were refused",
            ["outcome"],
            registry=edge.registry,
        )
        self.refusals = Counter(
            "liveward_bridge_refusals",
            "Requests refused as a whole, by reason",
            ["reason"],
            registry=edge.registry,
        )
        self.ignored_keys = Counter(
            "liveward_bridge_cmcd_ignored_keys",
            "Unknown CMCD keys ignored (the spec asks receivers to ignore them)",
            registry=edge.registry,
        )

        # Label lookups take a lock and a dict walk; the common ones are looked up once.
        self._accepted = self.samples.labels("accepted")
        self._latency = edge.latency.labels(edge.service, TELEMETRY_PATH)
        self._answers: dict[int, Any] = {}

    def answered(self, status: int, seconds: float) -> None:
        """The edge's request metrics for one answer of the route."""
        counter = self._answers.get(status)
        if counter is None:
            edge = self.edge
            counter = self._answers[status] = edge.requests.labels(
                edge.service, TELEMETRY_PATH, str(status)
            )
        counter.inc()
        self._latency.observe(seconds)

    def count(self, result: Accepted) -> None:
        self._accepted.inc(result.accepted)
        for rejection in result.rejected:
            self.samples.labels(rejection.reason).inc()
        if result.ignored_keys:
            self.ignored_keys.inc(len(result.ignored_keys))

    def refused(self, reason: str, problems: list[dict[str, object]]) -> None:
        self.refusals.labels(reason).inc()
        for problem in problems:
            self.samples.labels(str(problem.get("reason", "unknown"))).inc()


def refusal_status(exc: BridgeError | StreamsError) -> tuple[int, float | None]:
    """The HTTP status for a refusal, and its Retry-After if any."""
    if isinstance(exc, RequestRejected):
        return exc.status, None
    if isinstance(exc, RateLimited):
        return 429, exc.retry_after
    if isinstance(exc, ProducerBackpressure):
        return 503, exc.retry_after
    if isinstance(exc, DeliveryFailed | KeyStoreError):
        return 503, DELIVERY_RETRY_AFTER_S
    return 500, None


def _incoming(scope: Scope, body: bytes) -> tuple[TelemetryRequest, str, str | None]:
    """The request as the bridge reads it, the peer address and X-Forwarded-For."""
    content_type = ""
    cmcd_headers: list[str] = []
    forwarded: list[str] = []
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            # Every header counts: a proxy may add its own instead of appending.
            forwarded.append(value.decode("latin-1"))
        elif name in _CMCD_HEADERS:
            cmcd_headers.append(value.decode("latin-1"))
    raw_query: bytes = scope.get("query_string", b"")
    query = parse_qs(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else {}
    client = scope.get("client")
    request = TelemetryRequest(body, content_type, query.get("CMCD", []), cmcd_headers)
    return request, client[0] if client else "", ",".join(forwarded) if forwarded else None


async def _body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body; 413 `body-too-large` past limit, declared or not."""
    too_large = RequestRejected(
        "body-too-large", f"bodies are limited to {limit} bytes", status=413
    )
    for name, value in scope["headers"]:
        if name == b"content-length" and (not value.isdigit() or int(value) > limit):
            raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, answer: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_ALWAYS, (b"content-length", str(len(answer)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": answer})


class TelemetryRoute:
    """`POST /v1/telemetry` as plain ASGI; everything else goes on to the edge app."""

    def __init__(
        self, app: ASGIApp, *, bridge: TelemetryBridge, metrics: BridgeMetrics, max_body: int
    ) -> None:
        self._app = app
        self._bridge = bridge
        self._metrics = metrics
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == TELEMETRY_PATH:
            if scope["method"] == "POST":
                await self._telemetry(scope, receive, send)
                return
            if scope["method"] != "OPTIONS":  # preflights: the edge's CORS layer answers
                answer = error_body("method-not-allowed", "POST telemetry here")
                await _respond(send, 405, answer, [(b"allow", b"POST, OPTIONS")])
                return
        await self._app(scope, receive, send)

    async def _telemetry(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = []
        try:
            body = await _body(scope, receive, self._max_body)
            request, peer, forwarded = _incoming(scope, body)
            result = await to_thread.run_sync(self._ingest, request, peer, forwarded)
            status, answer = 202, orjson.dumps(result.as_json())
            self._metrics.count(result)
        except (BridgeError, StreamsError) as exc:
            status, retry_after = refusal_status(exc)
            problems = exc.problems if isinstance(exc, RequestRejected) else []
            extra = {"accepted": 0, "rejected": problems} if problems else {}
            answer = error_body(exc.reason, str(exc), **extra)
            if retry_after is not None:
                headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
            self._metrics.refused(exc.reason, problems)
        except Exception:
            # A bug, not the player's fault: say so with the same headers, and log it.
            _log.exception("POST %s failed", TELEMETRY_PATH)
            status, answer = 500, error_body("internal-error", "the bridge failed; try again")
        await _respond(send, status, answer, headers)
        self._metrics.answered(status, time.perf_counter() - started)

    def _ingest(self, request: TelemetryRequest, peer: str, forwarded: str | None) -> Accepted:
        return self._bridge.ingest(request, peer=peer, forwarded_for=forwarded)


def create_bridge_app(bridge: TelemetryBridge, *, max_body_bytes: int) -> ASGIApp:
    """The bridge edge: `POST /v1/telemetry` in front of what every edge serves."""
    app: FastAPI = create_edge_app("bridge", max_body_bytes=max_body_bytes)
    metrics = BridgeMetrics(app.state.metrics)
    return TelemetryRoute(app, bridge=bridge, metrics=metrics, max_body=max_body_bytes)
