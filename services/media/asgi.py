"""The bare ASGI plumbing origins and edges share: responses with CORS, errors, metrics, serving.

Origins and edges sit on every player's hot path, so they are plain ASGI callables on
uvicorn (httptools, uvloop) rather than FastAPI apps; the conventions of the other edges
are kept: CORS on every answer, JSON errors with a reason code, `/healthz`, `/metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client import generate_latest as render_metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CORS_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"age, x-cache, x-liveward-pathway"),
)
PREFLIGHT_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    *CORS_HEADERS,
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, cmcd-object, "
     b"cmcd-request, cmcd-session, cmcd-status"),
    (b"access-control-max-age", b"600"),
)  # fmt: skip

PLAYLIST_TYPE = b"application/vnd.apple.mpegurl"
SEGMENT_TYPE = b"video/mp2t"
JSON_TYPE = b"application/json"


class Reply:
    """A whole response: status, body and extra headers (CORS and length are added on send)."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        self.status = status
        self.body = body
        self.headers = list(headers)

    async def send(self, send: Send, *, head_only: bool = False) -> None:
        headers = [*self.headers, *CORS_HEADERS, (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head_only else self.body})


def error_reply(status: int, reason: str, message: str) -> Reply:
    return Reply(
        status,
        orjson.dumps({"error": reason, "message": message}),
        [(b"content-type", JSON_TYPE), (b"cache-control", b"no-store")],
    )


def json_reply(payload: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(payload), [(b"content-type", JSON_TYPE)])


class ServerMetrics:
    """Requests answered by route kind and status, on the process's own registry."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "liveward_media_requests",
            "Media-plane HTTP requests answered",
            ["service", "kind", "status"],
            registry=self.registry,
        )
        self.service = service

    def count(self, kind: str, status: int) -> None:
        self.requests.labels(self.service, kind, str(status)).inc()

    def reply(self) -> Reply:
        return Reply(
            200, render_metrics(self.registry), [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        )


Handler = Callable[[str, Scope], Awaitable[Reply]]


def asgi_app(handle: Handler, metrics: ServerMetrics, ready: Callable[[], bool]) -> Any:
    """An ASGI app answering GET/HEAD through handle(path, scope), plus health and metrics."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"]
        if method == "OPTIONS":
            await send(
                {"type": "http.response.start", "status": 204, "headers": list(PREFLIGHT_HEADERS)}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if method not in ("GET", "HEAD"):
            reply = error_reply(405, "method-not-allowed", f"{method} is not served here")
        elif path == "/healthz":
            ok = ready()
            reply = json_reply({"service": metrics.service, "ready": ok}, 200 if ok else 503)
        elif path == "/metrics":
            reply = metrics.reply()
        else:
            reply = await handle(path, scope)
            metrics.count(_kind(path), reply.status)
        await reply.send(send, head_only=method == "HEAD")

    return app


def _kind(path: str) -> str:
    if path.endswith(".m3u8"):
        return "playlist"
    if path.endswith(".ts"):
        return "segment"
    return "other"


def serve_asgi(
    app: Any, host: str, port: int, *, on_stop: Callable[[], None] | None = None
) -> None:
    """Run app until SIGTERM/SIGINT (uvicorn handles them), then call on_stop."""
    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_level="warning", lifespan="off",
        timeout_keep_alive=30,
    )  # fmt: skip
    try:
        uvicorn.Server(config).run()
    finally:
        if on_stop is not None:
            on_stop()


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
