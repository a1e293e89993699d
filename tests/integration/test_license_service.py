"""The license service as a real process, with the real auth service, worker and broker.

`liveward serve auth` issues the tokens and publishes the JWKS; `liveward serve license`
fetches it, follows the revocation list the session's worker folds, and reads key epochs
from a topic of this module's own (10-s key periods, so a period boundary is crossed in
the test). Geo comes from the demo MaxMind databases; the client address from
X-Forwarded-For (the test is a trusted proxy).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import grpc
import httpx
import pytest
from confluent_kafka import Consumer
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from infra.processes import wait_until
from liveward.settings import AuthSettings, KeySettings, ServiceSettings, Settings
from services.auth.server import keyring_path
from services.auth.signing_keys import KeyringFile
from services.auth.tokens import TokenVerifier, sign_token
from services.keys.keystore import ContentKey, KeyStore
from services.license.clearkey import b64url, b64url_decode
from services.license.proto import license_pb2, license_pb2_grpc
from streams.codec import AvroEvent, default_codec
from streams.consumer import consumer_config
from streams.events import LicenseDecision, LicenseIssued, TokenUsed
from streams.meta import now_ms
from tests.fixtures.geo import write_geo_databases
from tests.fixtures.services import epoch_on_topics_of_our_own, healthy, serve

ADMIN_KEY, APP_KEY = "it-admin-key", "it-app-key"
ORIGIN = {"Origin": "https://player.example"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}", **ORIGIN}
APP = {"Authorization": f"Bearer {APP_KEY}", **ORIGIN}
# In the demo databases: Stockholm on Bredband2 (AS29518), Washington on AS209, a Tor exit.
SE_IP, US_IP, TOR_IP = "89.160.20.112", "216.160.83.56", "81.2.69.142"
CONTENT = "sports/final"
PERIOD_S = 10

POLICY = """
unknown_content = "deny"

[default]
device_classes = ["*"]

[content."sports/*"]
ip_binding = "asn"
"""


@dataclass(frozen=True)
class LicenseEdge:
    settings: Settings
    auth_url: str
    url: str
    grpc_target: str
    keys: KeyStore


@pytest.fixture(scope="module")
def edge(
    worker: Settings, port_offset: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LicenseEdge]:
    """An auth and a license process, and a key epoch with 10-s periods on a topic of ours."""
    files = tmp_path_factory.mktemp("license")
    geo = write_geo_databases(files / "geo")
    policy = files / "policy.toml"
    policy.write_text(POLICY)
    auth_port, port, grpc_port = (p + port_offset for p in (18481, 18482, 18483))
    settings = worker.model_copy(
        update={
            "services": ServiceSettings(auth_port=auth_port, license_port=port),
            "keys": KeySettings(period_seconds=PERIOD_S),
            "auth": AuthSettings(
                admin_api_key=ADMIN_KEY,  # type: ignore[arg-type]
                app_api_key=APP_KEY,  # type: ignore[arg-type]
                geo_city_db=geo.city,
                geo_asn_db=geo.asn,
                geo_anonymous_db=geo.anonymous,
                policy_file=policy,
                trusted_proxies=("127.0.0.1/32",),
            ),
        }
    )
    topics, keys = epoch_on_topics_of_our_own(settings, "license", PERIOD_S)
    processes = [
        serve(settings, "license-auth", ["auth", "--port", str(auth_port)]),
        serve(
            settings,
            "license",
            [
                "license",
                "--port",
                str(port),
                "--grpc-port",
                str(grpc_port),
                "--epochs-topic",
                topics.epochs.name,
            ],
        ),
    ]
    urls = [f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{port}"]
    try:
        for process, url in zip(processes, urls, strict=True):
            ready = wait_until(partial(healthy, url), timeout=90, interval=0.2)
            assert ready, f"{process.name} never became ready:\n{process.log_tail(40)}"
        yield LicenseEdge(settings, urls[0], urls[1], f"127.0.0.1:{grpc_port}", keys)
    finally:
        for process in reversed(processes):
            process.stop()
        keys.close()
    for process in processes:
        assert "Traceback" not in process.log_tail(200), process.log_tail(60)


@pytest.fixture
def auth(edge: LicenseEdge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.auth_url, timeout=10.0) as http:
        yield http


@pytest.fixture
def client(edge: LicenseEdge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=10.0) as http:
        yield http


def _token(auth: httpx.Client, *, packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """A new viewer entitled to CONTENT (and packages) and a token for CONTENT from SE_IP."""
    viewer_id = f"viewer-{uuid.uuid4().hex[:10]}"
    subscriber = {"content_ids": [CONTENT], "packages": list(packages),
                  "device_classes": ["web"], "home_country": "SE"}  # fmt: skip
    stored = auth.put(f"/v1/subscribers/{viewer_id}", json=subscriber, headers=ADMIN)
    assert stored.status_code == 200, stored.text
    body = {"viewer_id": viewer_id, "content_id": CONTENT, "device_id": f"device-{viewer_id}",
            "device_class": "web", "client_ip": SE_IP}  # fmt: skip
    issued = auth.post("/v1/tokens", json=body, headers=APP)
    assert issued.status_code == 200, issued.text
    answer: dict[str, Any] = issued.json()
    return answer


def _player(token: str | None, ip: str = SE_IP) -> dict[str, str]:
    headers = {**ORIGIN, "X-Forwarded-For": ip}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _clearkey(
    client: httpx.Client, token: str | None, kids: list[bytes], ip: str = SE_IP
) -> httpx.Response:
    return client.post(
        "/v1/license/clearkey",
        json={"kids": [b64url(kid) for kid in kids], "type": "temporary"},
        headers=_player(token, ip),
    )


def _licensed(response: httpx.Response) -> dict[bytes, bytes]:
    assert response.status_code == 200, response.text
    return {b64url_decode(k["kid"]): b64url_decode(k["k"]) for k in response.json()["keys"]}


def _refused(response: httpx.Response, status: int, reason: str) -> None:
    assert (response.status_code, response.json().get("error")) == (status, reason), response.text
    assert response.headers["access-control-allow-origin"] == "*"


def _current(edge: LicenseEdge) -> ContentKey:
    return edge.keys.content_key(CONTENT, edge.keys.period_at(now_ms()).number)


def _encrypt(key: ContentKey, sample: bytes, nonce: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key.key), modes.CTR(nonce)).encryptor()
    return encryptor.update(sample) + encryptor.finalize()


def _decrypt(key: bytes, encrypted: bytes, nonce: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CTR(nonce)).decryptor()
    return decryptor.update(encrypted) + decryptor.finalize()


def _events(
    settings: Settings,
    topic: str,
    event_type: type[AvroEvent],
    match: Callable[[Any], bool],
    count: int,
) -> list[Any]:
    """The first `count` events on topic that match, read from the beginning (30 s at most)."""
    consumer = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    codec = default_codec()
    found: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and len(found) < count:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is not None or message.value() is None:
                    continue
                event = codec.decode_as(message.value() or b"", event_type)
                if match(event):
                    found.append(event)
    finally:
        consumer.close()
    assert len(found) >= count, f"{len(found)} of {count} {event_type.__name__} on {topic}"
    return found


def test_a_clearkey_license_decrypts_a_sample_and_the_hls_and_grpc_keys_agree(
    edge: LicenseEdge, auth: httpx.Client, client: httpx.Client
) -> None:
    issued = _token(auth)
    key = _current(edge)
    sample, nonce = b"a CMAF sample of the live event" * 8, os.urandom(16)
    encrypted = _encrypt(key, sample, nonce)

    response = _clearkey(client, issued["token"], [key.key_id_bytes])
    licensed = _licensed(response)
    assert _decrypt(licensed[key.key_id_bytes], encrypted, nonce) == sample
    assert len(licensed) == 2  # the current and the next period
    assert response.headers["cache-control"] == "no-store"

    hls = client.get(f"/v1/keys/{CONTENT}/{key.period}", headers=_player(issued["token"]))
    assert hls.status_code == 200, hls.text
    assert hls.content == key.key
    assert hls.headers["content-type"] == "application/octet-stream"

    with grpc.insecure_channel(edge.grpc_target) as channel:
        stub = license_pb2_grpc.LicenseServiceStub(channel)
        answer = stub.GetClearKeyLicense(
            license_pb2.ClearKeyRequest(token=issued["token"], kids=[key.key_id_bytes]),
            metadata=(("x-forwarded-for", SE_IP),),
        )
        single = stub.GetContentKey(
            license_pb2.ContentKeyRequest(
                token=issued["token"], content_id=CONTENT, period=key.period, client_ip=SE_IP
            ),
            metadata=(("x-api-key", APP_KEY),),
        )
    assert {k.kid: k.key for k in answer.keys} == licensed
    assert single.key.key == key.key

    # Every grant is in the license log, and every use reached the theft detector.
    ids = {response.headers["x-license-id"], hls.headers["x-license-id"],
           answer.license_id, single.license_id}  # fmt: skip
    grants = _events(
        edge.settings, "drm.licenses", LicenseIssued, lambda e: e.license_id in ids, len(ids)
    )
    assert {g.decision for g in grants} == {LicenseDecision.GRANTED}
    assert {g.protocol for g in grants} == {"clearkey-rest", "hls-key", "clearkey-grpc",
                                            "content-key-grpc"}  # fmt: skip
    assert all(key.key_id in g.key_ids for g in grants)
    uses = _events(
        edge.settings,
        "auth.tokens-used",
        TokenUsed,
        lambda e: e.token_id == issued["token_id"] and e.service.startswith("license"),
        4,
    )
    assert {u.service for u in uses} == {"license-rest", "license-keys", "license-grpc"}
    assert {(u.ip_prefix, u.asn, u.country) for u in uses} == {("89.160.20.0/24", 29518, "SE")}


def test_a_license_carries_the_next_period_so_the_boundary_needs_no_new_license(
    edge: LicenseEdge, auth: httpx.Client, client: httpx.Client
) -> None:
    issued = _token(auth)
    before = _current(edge)
    licensed = _licensed(_clearkey(client, issued["token"], [before.key_id_bytes]))

    # Wait (at most one 10-s period) for the next period to begin.
    assert wait_until(lambda: _current(edge).period == before.period + 1, timeout=PERIOD_S + 2)
    after = _current(edge)
    sample, nonce = b"the first sample after the boundary", os.urandom(16)
    assert _decrypt(licensed[after.key_id_bytes], _encrypt(after, sample, nonce), nonce) == sample
    served = client.get(f"/v1/keys/{CONTENT}/{after.period}", headers=_player(issued["token"]))
    assert served.content == licensed[after.key_id_bytes]


def test_every_refusal_class(edge: LicenseEdge, auth: httpx.Client, client: httpx.Client) -> None:
    issued = _token(auth)
    token, key = issued["token"], _current(edge)
    kid = key.key_id_bytes

    _refused(_clearkey(client, None, [kid]), 401, "token-missing")
    _refused(_clearkey(client, "garbage", [kid]), 401, "token-malformed")
    ring = KeyringFile(keyring_path(edge.settings)).load()
    signer = ring.signing_key(time.time())
    assert signer is not None
    claims = TokenVerifier.from_jwks(
        auth.get("/.well-known/jwks.json").json(),
        issuer=edge.settings.auth.issuer,
        audience=edge.settings.auth.audience,
    ).verify(token, now=time.time())
    expired = sign_token(
        replace(claims, expires_at=int(time.time()) - 60), signer.kid, signer.signer()
    )
    _refused(_clearkey(client, expired, [kid]), 401, "token-expired")

    _refused(client.get(f"/v1/keys/sports/other/{key.period}", headers=_player(token)),
             403, "not-entitled")  # fmt: skip
    _refused(_clearkey(client, token, [kid], ip=TOR_IP), 403, "anonymizer-tor")
    _refused(_clearkey(client, token, [kid], ip=US_IP), 403, "ip-moved-asn")
    _refused(_clearkey(client, token, [bytes(16)]), 404, "unknown-key-id")
    _refused(client.get(f"/v1/keys/{CONTENT}/{key.period + 5}", headers=_player(token)),
             404, "unknown-period")  # fmt: skip

    # Revoked through the auth service: the worker folds it, the license process follows.
    started = time.monotonic()
    revoked = auth.post(
        "/v1/revocations",
        json={"scope": "session", "subject": issued["session_id"], "reason": "integration-test"},
        headers=ADMIN,
    )
    assert revoked.status_code == 202, revoked.text
    enforced = wait_until(
        lambda: _clearkey(client, token, [kid]).status_code == 403, timeout=30, interval=0.02
    )
    assert enforced, "the revocation never reached the license service"
    print(f"\nrevocation API call → refused at the license service: "
          f"{(time.monotonic() - started) * 1000:.0f} ms")  # fmt: skip
    _refused(_clearkey(client, token, [kid]), 403, "session-revoked")
    refusals = _events(
        edge.settings,
        "drm.licenses",
        LicenseIssued,
        lambda e: e.session_id == issued["session_id"] and e.reason == "session-revoked",
        1,
    )
    assert refusals[0].decision == LicenseDecision.REFUSED and refusals[0].key_ids == ()


def test_grpc_refusals_carry_the_reason(edge: LicenseEdge, auth: httpx.Client) -> None:
    token = _token(auth)["token"]
    period = _current(edge).period
    with grpc.insecure_channel(edge.grpc_target) as channel:
        stub = license_pb2_grpc.LicenseServiceStub(channel)
        for request, code, reason in (
            (license_pb2.ContentKeyRequest(token="garbage", content_id=CONTENT, period=period),
             grpc.StatusCode.UNAUTHENTICATED, "token-malformed"),
            (license_pb2.ContentKeyRequest(token=token, content_id="sports/x", period=period),
             grpc.StatusCode.PERMISSION_DENIED, "not-entitled"),
            (license_pb2.ContentKeyRequest(token=token, content_id=CONTENT, period=period + 9),
             grpc.StatusCode.NOT_FOUND, "unknown-period"),
        ):  # fmt: skip
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetContentKey(request, metadata=(("x-forwarded-for", SE_IP),))
            assert refused.value.code() == code
            assert ("liveward-reason", reason) in tuple(refused.value.trailing_metadata() or ())
