"""The gRPC edge in process, over a real channel: the same answers and refusals as REST."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import orjson
import pytest

from services.auth.app import ApiKeys
from services.license.clearkey import b64url_decode
from services.license.grpc_server import LicenseServicer, create_grpc_server, peer_address
from services.license.proto import license_pb2, license_pb2_grpc
from streams.events import LicenseIssued, TokenUsed
from tests.unit.services.license.conftest import HOME_IP, P0, TOR_IP, LicenseWorld

APP_KEY = "app-key"


@pytest.fixture
def stub(world: LicenseWorld) -> Iterator[license_pb2_grpc.LicenseServiceStub]:
    servicer = LicenseServicer(
        world.service,
        api_keys=ApiKeys(admin="admin-key", app=APP_KEY),
        trusted_proxies=("127.0.0.1/32",),
    )
    server, port = create_grpc_server(servicer, "127.0.0.1:0", workers=2)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield license_pb2_grpc.LicenseServiceStub(channel)
    finally:
        channel.close()
        server.stop(None)


def _via_proxy(ip: str = HOME_IP) -> tuple[tuple[str, str], ...]:
    return (("x-forwarded-for", ip),)


def _refused(call: grpc.RpcError, code: grpc.StatusCode, reason: str) -> None:
    assert call.code() == code, call.details()
    assert ("liveward-reason", reason) in tuple(call.trailing_metadata() or ())


def test_a_clearkey_license_over_grpc_holds_current_and_next(
    world: LicenseWorld, stub: license_pb2_grpc.LicenseServiceStub
) -> None:
    current, following = world.key(P0), world.key(P0 + 1)
    answer = stub.GetClearKeyLicense(
        license_pb2.ClearKeyRequest(token=world.token(), kids=[current.key_id_bytes]),
        metadata=_via_proxy(),
    )
    assert [(k.kid, k.key, k.period) for k in answer.keys] == [
        (current.key_id_bytes, current.key, P0),
        (following.key_id_bytes, following.key, P0 + 1),
    ]
    assert answer.content_id == "sports/final"
    jwks = orjson.loads(answer.clearkey_json)
    assert b64url_decode(jwks["keys"][0]["k"]) == current.key
    ((_, record),) = world.events.stored
    assert isinstance(record, LicenseIssued) and record.protocol == "clearkey-grpc"
    assert record.license_id == answer.license_id
    ((_, use),) = world.events.signalled
    assert isinstance(use, TokenUsed) and use.service == "license-grpc"


def test_a_period_key_over_grpc_with_the_token_in_metadata(
    world: LicenseWorld, stub: license_pb2_grpc.LicenseServiceStub
) -> None:
    answer = stub.GetContentKey(
        license_pb2.ContentKeyRequest(content_id="sports/final", period=P0 + 1),
        metadata=(("authorization", f"Bearer {world.token()}"), *_via_proxy()),
    )
    assert answer.key.key == world.key(P0 + 1).key
    assert answer.key.start_ms == world.key(P0 + 1).start_ms


def test_an_edge_service_may_assert_the_client_address_only_with_its_key(
    world: LicenseWorld, stub: license_pb2_grpc.LicenseServiceStub
) -> None:
    request = license_pb2.ContentKeyRequest(
        token=world.token(), content_id="sports/final", period=P0, client_ip=HOME_IP
    )
    with pytest.raises(grpc.RpcError) as anonymous:
        stub.GetContentKey(request)
    _refused(anonymous.value, grpc.StatusCode.UNAUTHENTICATED, "api-key-invalid")
    answer = stub.GetContentKey(request, metadata=(("x-api-key", APP_KEY),))
    assert answer.key.key == world.key(P0).key


@pytest.mark.parametrize(
    ("changes", "code", "reason"),
    [
        ({"token": "garbage"}, grpc.StatusCode.UNAUTHENTICATED, "token-malformed"),
        ({"period": P0 + 5}, grpc.StatusCode.NOT_FOUND, "unknown-period"),
        ({"content_id": "sports/other"}, grpc.StatusCode.PERMISSION_DENIED, "not-entitled"),
        ({"content_id": "music/live"}, grpc.StatusCode.PERMISSION_DENIED, "not-entitled"),
        ({"period": -1}, grpc.StatusCode.INVALID_ARGUMENT, "bad-period"),
    ],
)
def test_refusals_are_status_codes_with_the_reason_in_trailing_metadata(
    world: LicenseWorld,
    stub: license_pb2_grpc.LicenseServiceStub,
    changes: dict[str, object],
    code: grpc.StatusCode,
    reason: str,
) -> None:
    fields: dict[str, object] = {"token": world.token(), "content_id": "sports/final", "period": P0}
    fields.update(changes)
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetContentKey(license_pb2.ContentKeyRequest(**fields), metadata=_via_proxy())
    _refused(refused.value, code, reason)


def test_geo_and_unknown_key_ids_over_grpc(
    world: LicenseWorld, stub: license_pb2_grpc.LicenseServiceStub
) -> None:
    kid = world.key(P0).key_id_bytes
    with pytest.raises(grpc.RpcError) as tor:
        stub.GetClearKeyLicense(
            license_pb2.ClearKeyRequest(token=world.token(), kids=[kid]),
            metadata=_via_proxy(TOR_IP),
        )
    _refused(tor.value, grpc.StatusCode.PERMISSION_DENIED, "anonymizer-tor")
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetClearKeyLicense(
            license_pb2.ClearKeyRequest(token=world.token(), kids=[bytes(16)]),
            metadata=_via_proxy(),
        )
    _refused(unknown.value, grpc.StatusCode.NOT_FOUND, "unknown-key-id")
    with pytest.raises(grpc.RpcError) as short:
        stub.GetClearKeyLicense(
            license_pb2.ClearKeyRequest(token=world.token(), kids=[b"short"]),
            metadata=_via_proxy(),
        )
    _refused(short.value, grpc.StatusCode.INVALID_ARGUMENT, "bad-key-id")


def test_grpc_peers_name_their_address() -> None:
    assert peer_address("ipv4:127.0.0.1:50512") == "127.0.0.1"
    assert peer_address("ipv6:[::1]:50512") == "::1"
