"""The auth service over HTTP: routes, API keys and bearer tokens, errors as reason codes.

Handlers are plain functions, so FastAPI runs them on its thread pool: each one waits
for Kafka to confirm what it emits, and that wait must not block the event loop.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from liveward.settings import Settings
from services.auth.errors import (
    AccessRefused,
    ApiKeyInvalid,
    AuthError,
    KeyringError,
    SubscriberInvalid,
    TokenRejected,
)
from services.auth.service import AuthService, BadAddress, IssuedToken, NotReady
from services.auth.subscribers import DEVICE_ID, VIEWER_ID, record_of
from services.http import create_edge_app, error_body, json_response
from streams.errors import DeliveryFailed, ProducerBackpressure, StreamsError
from streams.events import RevocationScope

# Verifiers may cache the JWKS this long; the next key is published a rotation ahead.
JWKS_MAX_AGE_S = 60

Role = Literal["admin", "app"]


class TokenRequest(BaseModel):
    """POST /v1/tokens: who wants to watch what, on which device, from where."""

    model_config = ConfigDict(extra="forbid")

    viewer_id: str = Field(pattern=VIEWER_ID.pattern)
    content_id: str = Field(min_length=1, max_length=256)
    device_id: str = Field(pattern=DEVICE_ID.pattern)
    device_class: str = Field(min_length=1, max_length=32)
    # The viewer's address as the calling app backend saw it; else the connection's.
    client_ip: str | None = Field(default=None, min_length=2, max_length=64)


class IntrospectRequest(BaseModel):
    """POST /v1/tokens/introspect: the content the token is used for, and from where."""

    model_config = ConfigDict(extra="forbid")

    content_id: str = Field(min_length=1, max_length=256)
    client_ip: str | None = Field(default=None, min_length=2, max_length=64)


class RevocationRequest(BaseModel):
    """POST /v1/revocations: what to revoke and why."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["token", "session", "device", "viewer"]
    subject: str = Field(min_length=1, max_length=256)
    reason: str = Field(min_length=1, max_length=200)


def _status_of(exc: Exception) -> tuple[int, float | None]:
    """The HTTP status for an error raised below the routes, and a Retry-After if any."""
    if isinstance(exc, TokenRejected | ApiKeyInvalid):
        return 401, None
    if isinstance(exc, AccessRefused):
        return 403, None
    if isinstance(exc, SubscriberInvalid | BadAddress):
        return 400, None
    if isinstance(exc, ProducerBackpressure):
        return 503, exc.retry_after
    if isinstance(exc, NotReady | DeliveryFailed | KeyringError):
        return 503, 1.0
    return 500, None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


class ApiKeys:
    """Which role a bearer API key has; compared in constant time."""

    def __init__(self, *, admin: str, app: str) -> None:
        roles: tuple[tuple[str, Role], ...] = ((admin, "admin"), (app, "app"))
        # An empty key in the settings switches that role off rather than matching "".
        self._keys = tuple((key.encode(), role) for key, role in roles if key)

    def role(self, presented: str | None) -> Role | None:
        if presented is None:
            return None
        found: Role | None = None
        for key, role in self._keys:
            # Every key is compared, so timing does not tell which one was close.
            if hmac.compare_digest(key, presented.encode()):
                found = found or role
        return found

    def require(self, request: Request, *allowed: Role) -> Role:
        role = self.role(_bearer(request))
        if role is None or role not in allowed:
            raise ApiKeyInvalid("a valid API key is required: Authorization: Bearer <key>")
        return role


def _peer(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _forwarded_for(request: Request) -> str | None:
    # Every X-Forwarded-For header, in order: a proxy may add its own instead of appending.
    values = request.headers.getlist("x-forwarded-for")
    return ",".join(values) if values else None


def _token_answer(issued: IssuedToken) -> dict[str, Any]:
    claims = issued.claims
    return {
        "token": issued.token,
        "token_id": claims.token_id,
        "session_id": claims.session_id,
        "expires_at": claims.expires_at,
        "kid": issued.kid,
    }


def create_auth_app(service: AuthService, settings: Settings) -> FastAPI:
    """The auth edge: subscribers, tokens, renewal, introspection, revocations, JWKS."""
    app = create_edge_app(
        "auth", max_body_bytes=settings.services.max_body_bytes, ready=service.ready
    )
    keys = ApiKeys(
        admin=settings.auth.admin_api_key.get_secret_value(),
        app=settings.auth.app_api_key.get_secret_value(),
    )

    @app.exception_handler(AuthError)
    @app.exception_handler(StreamsError)
    async def refused(_: Request, exc: AuthError | StreamsError) -> Response:
        status, retry_after = _status_of(exc)
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        if status == 401:
            # RFC 6750: tell a client that its bearer credentials were the problem.
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", reason="{exc.reason}"'
        return Response(
            error_body(exc.reason, str(exc)),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )

    @app.get("/.well-known/jwks.json")
    def jwks() -> Response:
        return json_response(
            service.jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"}
        )

    @app.put("/v1/subscribers/{viewer_id}")
    def put_subscriber(
        viewer_id: str, request: Request, body: Annotated[dict[str, Any], Body()]
    ) -> Response:
        keys.require(request, "admin")
        return json_response(record_of(service.put_subscriber(viewer_id, body)))

    @app.get("/v1/subscribers/{viewer_id}")
    def get_subscriber(viewer_id: str, request: Request) -> Response:
        keys.require(request, "admin")
        stored = service.subscriber(viewer_id)
        if stored is None:
            raise AccessRefused("unknown-viewer", "no such subscriber")
        return json_response(record_of(stored))

    @app.post("/v1/tokens")
    def issue_token(body: TokenRequest, request: Request) -> Response:
        keys.require(request, "admin", "app")
        ip = service.client_address(_peer(request), _forwarded_for(request), body.client_ip)
        issued = service.issue(
            viewer_id=body.viewer_id,
            content_id=body.content_id,
            device_id=body.device_id,
            device_class=body.device_class,
            ip=ip,
        )
        return json_response(_token_answer(issued))

    @app.post("/v1/tokens/renew")
    def renew_token(request: Request) -> Response:
        ip = service.client_address(_peer(request), _forwarded_for(request), None)
        issued = service.renew(_bearer(request), ip=ip)
        return json_response(_token_answer(issued))

    @app.post("/v1/tokens/introspect")
    def introspect(body: IntrospectRequest, request: Request) -> Response:
        # The bearer is the player's token; only an edge service (with its own key) may
        # assert where the player is, or a thief could claim the viewer's address.
        if body.client_ip is not None and keys.role(request.headers.get("x-api-key")) is None:
            raise ApiKeyInvalid("client_ip may only be asserted by an edge service (X-Api-Key)")
        ip = service.client_address(_peer(request), _forwarded_for(request), body.client_ip)
        verdict = service.introspect(_bearer(request), content_id=body.content_id, ip=ip)
        decision = verdict.decision
        return json_response(
            {
                "active": True,
                **verdict.claims.to_payload(),
                "decision": {"reason": decision.reason, "policy": decision.policy},
            }
        )

    @app.post("/v1/revocations")
    def revoke(body: RevocationRequest, request: Request) -> Response:
        keys.require(request, "admin")
        revocation = service.revoke(
            scope=RevocationScope(body.scope.upper()),
            subject=body.subject,
            reason=body.reason,
            requested_by="admin-api",
        )
        answer: dict[str, Any] = {
            "revocation_id": revocation.revocation_id,
            "covers_until": revocation.covers_until_ms,
        }
        if revocation.session_version is not None:
            answer["session_version"] = revocation.session_version
        return json_response(answer, status=202)

    return app
