"""The auth edge over a real ASGI client, with in-memory Kafka, keyring, views and geo.

The integration suite runs the same story against a real broker and process; these
cover every refusal quickly and with an injected clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from liveward.settings import AuthSettings, Settings
from processors.revocation_list import entry_key, fold_request
from services.access.geo import GeoFacts, GeoResolver
from services.access.policy import PolicyBook
from services.access.revocation import TokenIdentity, revocation_reason
from services.auth.app import create_auth_app
from services.auth.service import AuthService, InMemoryEventSink
from services.auth.signing_keys import InMemoryKeyringStore, RotationSchedule, SigningKeys, b64url
from services.auth.subscribers import InMemorySubscriberView, SubscriberDirectory
from services.auth.tokens import CLOCK_SKEW_S, TokenVerifier
from streams.events import (
    RevocationListEntry,
    RevocationRequested,
    SubscriberEntitlements,
    TokenIssued,
    TokenUsed,
    UseDecision,
)

# Every request comes from a web player's origin, so every answer must carry CORS headers.
ORIGIN = {"Origin": "https://player.example"}
ADMIN = {"Authorization": "Bearer admin-key", **ORIGIN}
APP = {"Authorization": "Bearer app-key", **ORIGIN}
HOME_IP, AWAY_IP, TOR_IP = "89.160.20.112", "216.160.83.56", "81.2.69.142"
T0 = 1_800_000_000.0


def _facts(ip: str, network: str, country: str | None, asn: int | None, *anon: str) -> GeoFacts:
    return GeoFacts(ip, network, country, None, asn, frozenset(anon), None)


PLACES = {
    HOME_IP: _facts(HOME_IP, "89.160.20.0/24", "SE", 29518),
    AWAY_IP: _facts(AWAY_IP, "216.160.83.0/24", "US", 209),
    TOR_IP: _facts(TOR_IP, "81.2.69.0/24", "GB", None, "tor", "anonymous"),
}


class Places:
    """Three known addresses; others as a resolver without databases sees them."""

    def __init__(self) -> None:
        self._nowhere = GeoResolver(None, None, None)

    def resolve(self, ip: str) -> GeoFacts:
        facts = self._nowhere.resolve(ip)
        return PLACES.get(facts.ip, facts)


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class FoldedRevocations:
    """The revocation list as the Faust agent would fold it, from what the service emits."""

    sink: InMemoryEventSink
    clock: Clock
    entries: dict[str, RevocationListEntry] = field(default_factory=dict)

    def check(self, token: TokenIdentity) -> str | None:
        for request in self.sink.of(RevocationRequested):
            key = entry_key(request.scope, request.subject)
            now_ms = round(self.clock() * 1000)
            folded = fold_request(self.entries.get(key), request, now_ms=now_ms, event_id="e")
            if folded is not None:
                self.entries[key] = folded
        return revocation_reason(self.entries.get, token, now_ms=round(self.clock() * 1000))

    def ready(self) -> bool:
        return True


@dataclass
class Edge:
    client: TestClient
    sink: InMemoryEventSink
    clock: Clock
    revocations: FoldedRevocations


def make_edge(**auth: object) -> Edge:
    settings = Settings(
        auth=AuthSettings(
            admin_api_key="admin-key",  # type: ignore[arg-type]
            app_api_key="app-key",  # type: ignore[arg-type]
            signing_key_rotation_s=600,
            **auth,  # type: ignore[arg-type]
        )
    )
    clock, sink = Clock(), InMemoryEventSink()
    revocations = FoldedRevocations(sink, clock)
    keys = SigningKeys(
        InMemoryKeyringStore(),
        RotationSchedule(600, settings.auth.token_lifetime_s, CLOCK_SKEW_S),
        clock=clock,
    )
    service = AuthService(
        settings,
        keys=keys,
        subscribers=SubscriberDirectory(InMemorySubscriberView()),
        events=sink,
        revocations=revocations,
        geo=Places(),
        policies=PolicyBook(),
        clock=clock,
    )
    client = TestClient(create_auth_app(service, settings), client=("127.0.0.1", 50000))
    return Edge(client, sink, clock, revocations)


@pytest.fixture
def edge() -> Iterator[Edge]:
    built = make_edge()
    put(built, "viewer-1", packages=["sports"], device_classes=["tv", "web"])
    yield built


def put(edge: Edge, viewer_id: str, **fields: object) -> dict[str, object]:
    body = {"device_classes": ["tv"], "home_country": "SE", **fields}
    response = edge.client.put(f"/v1/subscribers/{viewer_id}", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def issue(edge: Edge, *, headers: dict[str, str] = APP, **changes: str) -> dict[str, Any]:
    body = {
        "viewer_id": "viewer-1",
        "content_id": "sports/final",
        "device_id": "device-1",
        "device_class": "tv",
        "client_ip": HOME_IP,
        **changes,
    }
    response = edge.client.post("/v1/tokens", json=body, headers={**headers, **ORIGIN})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def refused(response: object, status: int, reason: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.json()["error"] == reason  # type: ignore[attr-defined]
    assert response.headers["access-control-allow-origin"] == "*"  # type: ignore[attr-defined]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **ORIGIN}


def introspect(edge: Edge, token: str, content: str = "sports/final", ip: str = HOME_IP) -> object:
    # As an edge service reporting its player's address, which takes the service's key.
    return edge.client.post(
        "/v1/tokens/introspect",
        json={"content_id": content, "client_ip": ip},
        headers={**bearer(token), "X-Api-Key": "app-key"},
    )


def test_a_subscriber_is_stored_as_an_event_and_read_back(edge: Edge) -> None:
    stored = put(edge, "viewer-2", packages=["news"], max_concurrent_streams=3)
    assert stored["session_version"] == 0
    assert stored["packages"] == ["news"]
    event = edge.sink.of(SubscriberEntitlements)[-1]
    assert (event.viewer_id, event.max_concurrent_streams) == ("viewer-2", 3)
    response = edge.client.get("/v1/subscribers/viewer-2", headers=ADMIN)
    assert response.json()["max_concurrent_streams"] == 3


def test_an_invalid_subscriber_is_400_with_what_is_wrong(edge: Edge) -> None:
    response = edge.client.put(
        "/v1/subscribers/viewer-3", json={"device_classes": ["toaster"]}, headers=ADMIN
    )
    refused(response, 400, "subscriber-invalid")
    assert "toaster" in response.json()["message"]


def test_a_token_verifies_from_the_published_jwks(edge: Edge) -> None:
    answer = issue(edge)
    jwks = edge.client.get("/.well-known/jwks.json").json()
    verifier = TokenVerifier.from_jwks(jwks, issuer="liveward-auth", audience="liveward-playback")
    claims = verifier.verify(answer["token"], now=T0 + 1)
    assert (claims.viewer_id, claims.token_id, claims.session_id) == (
        "viewer-1",
        answer["token_id"],
        answer["session_id"],
    )
    assert claims.geo.network == "89.160.20.0/24" and claims.geo.asn == 29518
    assert answer["expires_at"] == int(T0) + 300
    assert jwt.get_unverified_header(answer["token"])["kid"] == answer["kid"]
    issued = edge.sink.of(TokenIssued)[-1]
    assert (issued.token_id, issued.ip_prefix, issued.country) == (
        answer["token_id"],
        "89.160.20.0/24",
        "SE",
    )
    assert issued.viewer_ref == claims.viewer_ref != "viewer-1"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"viewer_id": "nobody"}, "unknown-viewer"),
        ({"content_id": "movies/blockbuster"}, "not-entitled"),
        ({"device_class": "toaster"}, "unknown-device-class"),
        ({"device_class": "mobile"}, "device-class-not-allowed"),
        ({"client_ip": TOR_IP}, "anonymizer-tor"),
        ({"client_ip": "8.8.8.8"}, "unknown-location"),
        ({"client_ip": "10.0.0.7"}, "private-address"),
    ],
)
def test_refused_token_requests_are_403_with_a_reason(
    edge: Edge, changes: dict[str, str], reason: str
) -> None:
    body = {
        "viewer_id": "viewer-1",
        "content_id": "sports/final",
        "device_id": "device-1",
        "device_class": "tv",
        "client_ip": HOME_IP,
        **changes,
    }
    refused(edge.client.post("/v1/tokens", json=body, headers={**APP, **ORIGIN}), 403, reason)
    assert not edge.sink.of(TokenIssued)


def test_an_inactive_subscription_gets_no_token(edge: Edge) -> None:
    put(edge, "viewer-1", packages=["sports"], active=False)
    body = {"viewer_id": "viewer-1", "content_id": "sports/final", "device_id": "d",
            "device_class": "tv", "client_ip": HOME_IP}  # fmt: skip
    refused(edge.client.post("/v1/tokens", json=body, headers=APP), 403, "subscription-inactive")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic admin-key"}, APP],
)
def test_admin_routes_need_the_admin_key(edge: Edge, headers: dict[str, str]) -> None:
    response = edge.client.put(
        "/v1/subscribers/v9", json={"device_classes": ["tv"]}, headers={**headers, **ORIGIN}
    )
    refused(response, 401, "api-key-invalid")
    assert response.headers["www-authenticate"].startswith("Bearer")
    revoke = edge.client.post(
        "/v1/revocations",
        json={"scope": "token", "subject": "t", "reason": "x"},
        headers={**headers, **ORIGIN},
    )
    refused(revoke, 401, "api-key-invalid")


def test_malformed_or_unknown_fields_are_400(edge: Edge) -> None:
    response = edge.client.post(
        "/v1/tokens", content=b"{nope", headers={**APP, "content-type": "application/json"}
    )
    refused(response, 400, "malformed-request")
    response = edge.client.post("/v1/tokens", json={"viewer_id": "viewer-1"}, headers=APP)
    refused(response, 400, "malformed-request")
    body = {"viewer_id": "viewer-1", "content_id": "sports/final", "device_id": "d",
            "device_class": "tv", "client_ip": "not-an-ip"}  # fmt: skip
    refused(edge.client.post("/v1/tokens", json=body, headers=APP), 400, "bad-ip")


def test_without_a_client_ip_the_connection_address_is_used(edge: Edge) -> None:
    body = {"viewer_id": "viewer-1", "content_id": "sports/final", "device_id": "d",
            "device_class": "tv"}  # fmt: skip
    # The test client connects from loopback, which the default policy refuses.
    refused(edge.client.post("/v1/tokens", json=body, headers=APP), 403, "private-address")
    spoofed = {**APP, "X-Forwarded-For": HOME_IP}
    refused(edge.client.post("/v1/tokens", json=body, headers=spoofed), 403, "private-address")


def test_a_trusted_proxy_forwards_the_viewers_address() -> None:
    edge = make_edge(trusted_proxies=("127.0.0.1/32",))
    put(edge, "viewer-1", packages=["sports"])
    body = {"viewer_id": "viewer-1", "content_id": "sports/final", "device_id": "d",
            "device_class": "tv"}  # fmt: skip
    response = edge.client.post(
        "/v1/tokens", json=body, headers={**APP, "X-Forwarded-For": f"1.1.1.1, {HOME_IP}"}
    )
    assert response.status_code == 200, response.text
    assert edge.sink.of(TokenIssued)[-1].ip_prefix == "89.160.20.0/24"


def test_renewal_keeps_the_session_and_names_the_token_it_renews() -> None:
    edge = make_edge(trusted_proxies=("127.0.0.1/32",))
    put(edge, "viewer-1", packages=["sports"])
    first = issue(edge)
    edge.clock.now += 200
    response = edge.client.post(
        "/v1/tokens/renew", headers={**bearer(first["token"]), "X-Forwarded-For": HOME_IP}
    )
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["session_id"] == first["session_id"]
    assert second["token_id"] != first["token_id"]
    assert second["expires_at"] == int(T0) + 200 + 300
    assert edge.sink.of(TokenIssued)[-1].renewed_from == first["token_id"]


def test_introspection_allows_a_good_token_and_records_the_use(edge: Edge) -> None:
    token = issue(edge)["token"]
    response = introspect(edge, token)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    answer = response.json()  # type: ignore[attr-defined]
    assert answer["active"] is True and answer["sub"] == "viewer-1"
    assert answer["decision"]["reason"] == "allowed"
    use = edge.sink.of(TokenUsed)[-1]
    assert (use.decision, use.service, use.ip_prefix, use.asn, use.country) == (
        UseDecision.ALLOWED,
        "auth-introspect",
        "89.160.20.0/24",
        29518,
        "SE",
    )


def test_introspection_refuses_another_network_or_content_and_records_it(edge: Edge) -> None:
    token = issue(edge)["token"]
    refused(introspect(edge, token, ip=AWAY_IP), 403, "ip-moved-asn")
    refused(introspect(edge, token, content="news/live"), 403, "not-entitled")
    assert [u.decision for u in edge.sink.of(TokenUsed)] == [UseDecision.DENIED] * 2
    assert edge.sink.of(TokenUsed)[0].country == "US"


@pytest.mark.parametrize("scope", ["token", "session", "device", "viewer"])
def test_each_revocation_scope_kills_the_token(edge: Edge, scope: str) -> None:
    answer = issue(edge)
    subject = {
        "token": answer["token_id"],
        "session": answer["session_id"],
        "device": "device-1",
        "viewer": "viewer-1",
    }[scope]
    edge.clock.now += 1
    response = edge.client.post(
        "/v1/revocations",
        json={"scope": scope, "subject": subject, "reason": "test"},
        headers=ADMIN,
    )
    assert response.status_code == 202, response.text
    assert response.json()["revocation_id"]
    request = edge.sink.of(RevocationRequested)[-1]
    assert request.covers_until == round(edge.clock.now * 1000) + (300 + CLOCK_SKEW_S) * 1000
    if scope in ("device", "viewer"):
        assert request.subject != subject, "raw ids travel as pseudonyms"
    refused(introspect(edge, answer["token"]), 401, f"{scope}-revoked")
    refused(
        edge.client.post("/v1/tokens/renew", headers=bearer(answer["token"])),
        401,
        f"{scope}-revoked",
    )
    assert edge.sink.of(TokenUsed)[-1].reason == f"{scope}-revoked"


def test_a_viewer_revocation_bumps_the_session_version_so_old_tokens_are_stale(
    edge: Edge,
) -> None:
    old = issue(edge)["token"]
    response = edge.client.post(
        "/v1/revocations",
        json={"scope": "viewer", "subject": "viewer-1", "reason": "account-compromised"},
        headers=ADMIN,
    )
    assert response.json()["session_version"] == 1
    assert edge.sink.of(SubscriberEntitlements)[-1].session_version == 1
    edge.clock.now += 1
    new = issue(edge)["token"]
    assert introspect(edge, new).status_code == 200  # type: ignore[attr-defined]
    # Even without the revocation list entry, the session version keeps the old token dead.
    edge.sink.sent = [(t, e) for t, e in edge.sink.sent if not isinstance(e, RevocationRequested)]
    edge.revocations.entries.clear()
    refused(introspect(edge, old), 401, "session-version-stale")
    refused(edge.client.post("/v1/tokens/renew", headers=bearer(old)), 401, "session-version-stale")


def test_attack_tokens_are_refused_with_their_reason(edge: Edge) -> None:
    good = issue(edge)["token"]
    head, body, sig = good.split(".")
    alg_none = b64url(b'{"alg":"none"}')
    cases = {
        "garbage": "token-malformed",
        "x" * 5000: "token-too-large",
        f"{head}.{body}.{sig[:-4]}AAAA": "signature-invalid",
        f"{alg_none}.{body}.": "alg-not-allowed",
    }
    for token, reason in cases.items():
        refused(introspect(edge, token), 401, reason)
    refused(edge.client.post("/v1/tokens/renew", headers=ORIGIN), 401, "token-missing")


def test_expired_and_retired_tokens_are_refused(edge: Edge) -> None:
    token = issue(edge)["token"]
    edge.clock.now += 300 + CLOCK_SKEW_S
    refused(introspect(edge, token), 401, "token-expired")
    edge.clock.now = T0 + 600 + 300 + CLOCK_SKEW_S
    refused(introspect(edge, token), 401, "kid-retired")
    assert not any(
        j["kid"] == jwt.get_unverified_header(token)["kid"]
        for j in edge.client.get("/.well-known/jwks.json").json()["keys"]
    )


def test_encrypted_tokens_round_trip_through_the_edge() -> None:
    edge = make_edge(encrypt_tokens=True, token_encryption_key=b64url(b"k" * 32))
    put(edge, "viewer-1", packages=["sports"])
    token = issue(edge)["token"]
    assert token.count(".") == 4
    assert introspect(edge, token).status_code == 200  # type: ignore[attr-defined]
    head, *rest = token.split(".")
    refused(introspect(edge, ".".join([head, *rest[:-1], "AAAA"])), 401, "jwe-invalid")


def test_cors_preflight_for_the_token_routes(edge: Edge) -> None:
    response = edge.client.options(
        "/v1/tokens/introspect",
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_the_concurrent_stream_limit_counts_live_sessions(edge: Edge) -> None:
    put(edge, "viewer-1", packages=["sports"], device_classes=["tv"], max_concurrent_streams=2)
    first = issue(edge)
    issue(edge, device_id="device-2")
    body = {"viewer_id": "viewer-1", "content_id": "sports/final", "device_id": "device-3",
            "device_class": "tv", "client_ip": HOME_IP}  # fmt: skip
    third = edge.client.post("/v1/tokens", json=body, headers={**APP, **ORIGIN})
    refused(third, 403, "too-many-streams")
    assert first["session_id"]


def test_a_revoked_or_expired_session_frees_its_stream(edge: Edge) -> None:
    first = issue(edge)
    body = {"viewer_id": "viewer-1", "content_id": "sports/final", "device_id": "device-2",
            "device_class": "tv", "client_ip": HOME_IP}  # fmt: skip
    refused(edge.client.post("/v1/tokens", json=body, headers={**APP, **ORIGIN}), 403,
            "too-many-streams")  # fmt: skip
    edge.client.post(
        "/v1/revocations",
        json={"scope": "session", "subject": first["session_id"], "reason": "signed-out"},
        headers=ADMIN,
    )
    second = issue(edge, device_id="device-2")
    edge.clock.now += 301 + 60  # past the token lifetime and the skew allowance
    issue(edge, device_id="device-3")
    assert second["session_id"] != first["session_id"]
