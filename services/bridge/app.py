"""The bridge over HTTP: `POST /v1/telemetry`, its answers and reason codes, its metrics.

The body is read on the event loop (bounded even without a Content-Length), then the
bridge runs on the thread pool: it waits for Kafka to confirm, and that wait must not
block other requests.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter
from starlette.concurrency import run_in_threadpool

from services.bridge.bridge import TelemetryBridge
from services.bridge.cmcd import CMCD_HEADERS
from services.bridge.errors import BridgeError, KeyStoreError, RateLimited, RequestRejected
from services.bridge.requests import TelemetryRequest
from services.http import create_edge_app, error_body, json_response
from streams.errors import DeliveryFailed, ProducerBackpressure, StreamsError

# Kafka unreachable or too slow: come back after this long.
DELIVERY_RETRY_AFTER_S = 1.0


class BridgeMetrics:
    """Sample outcomes and refusals, on the edge's own registry."""

    def __init__(self, app: FastAPI) -> None:
        registry = app.state.metrics.registry
        self.samples = Counter(
            "liveward_bridge_samples",
            "Telemetry samples by outcome: accepted, or the reason they were refused",
            ["outcome"],
            registry=registry,
        )
        self.refusals = Counter(
            "liveward_bridge_refusals",
            "Requests refused as a whole, by reason",
            ["reason"],
            registry=registry,
        )
        self.ignored_keys = Counter(
            "liveward_bridge_cmcd_ignored_keys",
            "Unknown CMCD keys ignored (the spec asks receivers to ignore them)",
            registry=registry,
        )

    def rejected(self, problems: list[dict[str, object]]) -> None:
        for problem in problems:
            self.samples.labels(str(problem.get("reason", "unknown"))).inc()


def _refusal(exc: BridgeError | StreamsError) -> tuple[int, float | None]:
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


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it grows past limit (chunked bodies have no Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_bridge_app(bridge: TelemetryBridge, *, max_body_bytes: int) -> FastAPI:
    """The bridge edge: `POST /v1/telemetry` plus what every edge serves."""
    app = create_edge_app("bridge", max_body_bytes=max_body_bytes)
    metrics = BridgeMetrics(app)

    @app.exception_handler(BridgeError)
    @app.exception_handler(StreamsError)
    async def refused(_: Request, exc: BridgeError | StreamsError) -> Response:
        status, retry_after = _refusal(exc)
        metrics.refusals.labels(exc.reason).inc()
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        extra: dict[str, object] = {}
        if isinstance(exc, RequestRejected) and exc.problems:
            metrics.rejected(exc.problems)
            extra = {"accepted": 0, "rejected": exc.problems}
        return Response(
            error_body(exc.reason, str(exc), **extra),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )

    @app.post("/v1/telemetry")
    async def telemetry(request: Request) -> Response:
        body = await _bounded_body(request, max_body_bytes)
        if body is None:
            raise RequestRejected(
                "body-too-large", f"bodies are limited to {max_body_bytes} bytes", status=413
            )
        headers = request.headers
        telemetry_request = TelemetryRequest(
            body=body,
            content_type=headers.get("content-type", ""),
            cmcd_query=request.query_params.getlist("CMCD"),
            cmcd_headers=[value for name in CMCD_HEADERS for value in headers.getlist(name)],
        )
        forwarded = headers.getlist("x-forwarded-for")
        result = await run_in_threadpool(
            bridge.ingest,
            telemetry_request,
            peer=request.client.host if request.client is not None else "",
            forwarded_for=",".join(forwarded) if forwarded else None,
        )
        metrics.samples.labels("accepted").inc(result.accepted)
        metrics.rejected([r.as_json() for r in result.rejected])
        if result.ignored_keys:
            metrics.ignored_keys.inc(len(result.ignored_keys))
        return json_response(result.as_json(), status=202)

    return app
