"""The license service over gRPC (`proto/license.proto`): the same checks and answers as REST.

A synchronous grpcio server on a thread pool: each handler runs the checks and then
blocks on its own license record's acknowledgement, which is what the threads are for.
A refusal is the gRPC status for its class with the reason code in the trailing
metadata entry `liveward-reason`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import grpc

from services.access.client_ip import client_ip
from services.auth.app import ApiKeys
from services.keys.keystore import ContentKey
from services.license.clearkey import KEY_ID_BYTES, license_response
from services.license.errors import LicenseError, Refusal
from services.license.proto import license_pb2, license_pb2_grpc
from services.license.rest import MAX_CONTENT_ID, bearer_token
from services.license.service import (
    CLEARKEY_GRPC,
    CONTENT_KEY_GRPC,
    Edge,
    LicenseRequest,
    LicenseService,
)

REASON_METADATA = "liveward-reason"
GRPC_STATUS: dict[Refusal, grpc.StatusCode] = {
    Refusal.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Refusal.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    Refusal.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Refusal.PAYLOAD_TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
MAX_KIDS = 16
# Handlers mostly wait on Kafka; a few more threads than cores keep both busy.
DEFAULT_WORKERS = 16


def peer_address(peer: str) -> str:
    """The address in a grpcio peer string (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest


def _bad(reason: str, message: str) -> LicenseError:
    return LicenseError(Refusal.BAD_REQUEST, reason, message)


class LicenseServicer(license_pb2_grpc.LicenseServiceServicer):
    """`liveward.license.v1.LicenseService` on a LicenseService."""

    def __init__(
        self, service: LicenseService, *, api_keys: ApiKeys, trusted_proxies: Sequence[str]
    ) -> None:
        self._service = service
        self._api_keys = api_keys
        self._proxies = tuple(trusted_proxies)

    def _request(
        self,
        context: grpc.ServicerContext,
        edge: Edge,
        *,
        token: str,
        content_id: str,
        asserted_ip: str,
    ) -> LicenseRequest:
        metadata = {key: value for key, value in context.invocation_metadata()}
        if asserted_ip:
            # Only an edge service may say where its player is, or a thief could claim
            # the viewer's address (as at the auth service's introspection).
            if self._api_keys.role(_text(metadata.get("x-api-key"))) is None:
                raise LicenseError(
                    Refusal.UNAUTHENTICATED,
                    "api-key-invalid",
                    "client_ip may only be asserted by an edge service (x-api-key)",
                )
            ip = asserted_ip
        else:
            ip = client_ip(
                peer_address(context.peer()), _text(metadata.get("x-forwarded-for")), self._proxies
            )
        if len(content_id) > MAX_CONTENT_ID:
            raise _bad("bad-content-id", f"content ids are 1..{MAX_CONTENT_ID} chars")
        return LicenseRequest(
            token=token or bearer_token(_text(metadata.get("authorization"))),
            ip=ip,
            edge=edge,
            content_id=content_id or None,
        )

    def GetClearKeyLicense(  # noqa: N802 (the name is the proto's)
        self, request: license_pb2.ClearKeyRequest, context: grpc.ServicerContext
    ) -> license_pb2.ClearKeyLicense:
        try:
            kids = list(dict.fromkeys(request.kids))
            if not kids:
                raise _bad("malformed-request", "kids must not be empty")
            if len(kids) > MAX_KIDS:
                raise _bad("too-many-kids", f"at most {MAX_KIDS} key ids per request")
            if any(len(kid) != KEY_ID_BYTES for kid in kids):
                raise _bad("bad-key-id", f"a key id is {KEY_ID_BYTES} bytes")
            license_request = self._request(
                context,
                CLEARKEY_GRPC,
                token=request.token,
                content_id=request.content_id,
                asserted_ip=request.client_ip,
            )
            grant = self._service.clearkey(license_request, kids)
            keys = grant.keys_once_stored()
        except LicenseError as exc:
            _abort(context, exc)
        return license_pb2.ClearKeyLicense(
            license_id=grant.license_id,
            content_id=keys[0].content_id,
            keys=[_key(key) for key in keys],
            clearkey_json=license_response(keys),
        )

    def GetContentKey(  # noqa: N802 (the name is the proto's)
        self, request: license_pb2.ContentKeyRequest, context: grpc.ServicerContext
    ) -> license_pb2.ContentKeyResponse:
        try:
            if not request.content_id:
                raise _bad("bad-content-id", "content_id is required")
            if request.period < 0:
                raise _bad("bad-period", f"no period {request.period}")
            license_request = self._request(
                context,
                CONTENT_KEY_GRPC,
                token=request.token,
                content_id=request.content_id,
                asserted_ip=request.client_ip,
            )
            grant = self._service.period_key(license_request, request.period)
            (key,) = grant.keys_once_stored()
        except LicenseError as exc:
            _abort(context, exc)
        return license_pb2.ContentKeyResponse(
            license_id=grant.license_id, content_id=key.content_id, key=_key(key)
        )


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _key(key: ContentKey) -> license_pb2.ContentKey:
    return license_pb2.ContentKey(
        kid=key.key_id_bytes,
        key=key.key,
        period=key.period,
        start_ms=key.start_ms,
        end_ms=key.end_ms,
    )


def _abort(context: grpc.ServicerContext, exc: LicenseError) -> NoReturn:
    context.set_trailing_metadata(((REASON_METADATA, exc.reason),))
    context.abort(GRPC_STATUS[exc.refusal], f"{exc.reason}: {exc}")
    # grpcio's abort raises; should it ever return, the handler must not go on.
    raise RuntimeError("grpc abort returned") from exc


def create_grpc_server(
    servicer: LicenseServicer, address: str, *, workers: int = DEFAULT_WORKERS
) -> tuple[grpc.Server, int]:
    """A started-later gRPC server on address (`host:port`); returns it and the bound port."""
    server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"))
    # Generated code carries no annotations.
    license_pb2_grpc.add_LicenseServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(address)
    if port == 0:
        raise LicenseError(Refusal.UNAVAILABLE, "grpc-bind-failed", f"cannot listen on {address}")
    return server, port
