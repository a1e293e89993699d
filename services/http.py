"""What every HTTP edge shares: CORS, health, metrics, size limits, errors with reason codes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as render_metrics
from starlette.exceptions import HTTPException as StarletteHTTPException

from liveward.errors import LivewardError
from services.heap import settle_heap


class EdgeError(LivewardError):
    """A refusal an edge answers with `status` and a machine-readable `reason`."""

    def __init__(self, status: int, reason: str, message: str, *, retry_after: float | None = None):
        super().__init__(message, reason=reason)
        self.status = status
        self.retry_after = retry_after


def error_body(reason: str, message: str, **extra: Any) -> bytes:
    return orjson.dumps({"error": reason, "message": message, **extra})


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


class EdgeMetrics:
    """Request counters and latency histograms of one service, on its own registry."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "liveward_http_requests",
            "HTTP requests answered",
            ["service", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "liveward_http_request_seconds",
            "Time to answer an HTTP request",
            ["service", "route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.service = service


def create_edge_app(
    service: str, *, max_body_bytes: int, ready: Callable[[], bool] | None = None
) -> FastAPI:
    """A FastAPI app with the conventions every liveward edge follows.

    - CORS on every response, 4xx included, and preflights answered: web players call
      from another origin with an Authorization header.
    - `/healthz` (503 until `ready()` is true) and Prometheus `/metrics`.
    - Bodies over max_body_bytes get 413 `body-too-large` before they are parsed.
    - Errors are JSON `{"error": <reason>, "message": ...}`: EdgeError with its status,
      malformed requests 400 `malformed-request`, unknown routes 404 `not-found`.
    """
    app = FastAPI(title=f"liveward {service}", docs_url=None, redoc_url=None)
    metrics = EdgeMetrics(service)
    app.state.metrics = metrics

    @app.middleware("http")
    async def limit_and_measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            response: Response = Response(
                error_body("body-too-large", f"bodies are limited to {max_body_bytes} bytes"),
                status_code=413,
                media_type="application/json",
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(service, path, str(response.status_code)).inc()
        metrics.latency.labels(service, path).observe(time.perf_counter() - started)
        return response

    # Added last so it wraps everything above: even a 413 carries CORS headers.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "CMCD-Object", "CMCD-Request",
                       "CMCD-Session", "CMCD-Status"],
        expose_headers=["Retry-After"],
        max_age=600,
    )  # fmt: skip

    @app.exception_handler(EdgeError)
    async def edge_error(_: Request, exc: EdgeError) -> Response:
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return Response(
            error_body(exc.reason, str(exc)),
            status_code=exc.status,
            media_type="application/json",
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return Response(
            error_body(
                "malformed-request", "the request does not match the API", problems=problems
            ),
            status_code=400,
            media_type="application/json",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        reason = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return Response(
            error_body(reason, str(exc.detail)),
            status_code=exc.status_code,
            media_type="application/json",
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        ok = ready() if ready is not None else True
        return json_response({"service": service, "ready": ok}, status=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(render_metrics(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run an edge until interrupted (uvicorn, one process, access log off), its start-up
    heap settled first (services.heap)."""
    settle_heap()
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
