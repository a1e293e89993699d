"""The license service over HTTP: ClearKey licenses and HLS AES-128 keys.

Handlers are coroutines: the checks are CPU work of a fraction of a millisecond, and the
one wait (Kafka confirming the license record) is awaited on the event loop, so no
thread pool sits between a request and its answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request, Response

from services.access.client_ip import client_ip, trusted_networks
from services.http import create_edge_app, error_body
from services.license.clearkey import license_response, parse_license_request
from services.license.errors import LicenseError, Refusal
from services.license.service import (
    CLEARKEY_REST,
    HLS_KEY_REST,
    Edge,
    LicenseRequest,
    LicenseService,
)

# A ClearKey request is a few hundred bytes; nothing bigger is parsed.
MAX_BODY_BYTES = 16_384
NO_STORE = {"Cache-Control": "no-store"}
MAX_CONTENT_ID = 256


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


def _content(text: str | None) -> str | None:
    if text is not None and not 0 < len(text) <= MAX_CONTENT_ID:
        raise LicenseError(
            Refusal.BAD_REQUEST, "bad-content-id", f"content ids are 1..{MAX_CONTENT_ID} chars"
        )
    return text


def create_license_app(service: LicenseService, *, trusted_proxies: Sequence[str]) -> FastAPI:
    """The license edge: `POST /v1/license/clearkey`, `GET /v1/keys/{content}/{period}`."""
    app = create_edge_app("license", max_body_bytes=MAX_BODY_BYTES, ready=service.ready)
    for collector in service.metrics.collectors():
        app.state.metrics.registry.register(collector)
    proxies = tuple(trusted_proxies)
    trusted_networks(proxies)  # a bad CIDR fails here, at start, not at the first viewer

    @app.exception_handler(LicenseError)
    async def refused(_: Request, exc: LicenseError) -> Response:
        headers = dict(NO_STORE)
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if exc.refusal is Refusal.UNAUTHENTICATED:
            # RFC 6750: tell the player its bearer token was the problem.
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", reason="{exc.reason}"'
        return Response(
            error_body(exc.reason, str(exc)),
            status_code=exc.http_status,
            media_type="application/json",
            headers=headers,
        )

    def license_request(
        request: Request, edge: Edge, token: str | None, content_id: str | None
    ) -> LicenseRequest:
        forwarded = request.headers.getlist("x-forwarded-for")
        peer = request.client.host if request.client is not None else ""
        return LicenseRequest(
            token=token,
            ip=client_ip(peer, ",".join(forwarded) if forwarded else None, proxies),
            edge=edge,
            content_id=_content(content_id),
        )

    @app.post("/v1/license/clearkey")
    async def clearkey(request: Request, content: str | None = None) -> Response:
        """EME ClearKey: `{"kids": [...], "type": "temporary"}` in, a JWK set out.

        `?content=` asks for another content the token's packages entitle; by default
        the license is for the token's own content.
        """
        asked = parse_license_request(await request.body())
        token = bearer_token(request.headers.get("authorization"))
        grant = service.clearkey(
            license_request(request, CLEARKEY_REST, token, content), asked.kids
        )
        keys = await grant.keys_when_stored()
        return Response(
            license_response(keys),
            media_type="application/json",
            headers={**NO_STORE, "X-License-Id": grant.license_id},
        )

    @app.get("/v1/keys/{content_id:path}/{period}")
    async def period_key(
        content_id: str, period: str, request: Request, token: str | None = None
    ) -> Response:
        """The raw 16-byte AES-128 key of one period (an HLS `EXT-X-KEY` URI).

        The token comes as `Authorization: Bearer` (hls.js `xhrSetup`) or, for players
        that cannot set headers on key requests, as `?token=` (see the README for what
        a token in a URL costs).
        """
        bearer = bearer_token(request.headers.get("authorization")) or token
        grant = service.period_key(
            license_request(request, HLS_KEY_REST, bearer, content_id), parse_period(period)
        )
        (key,) = await grant.keys_when_stored()
        return Response(
            key.key,
            media_type="application/octet-stream",
            headers={**NO_STORE, "X-License-Id": grant.license_id},
        )

    return app
