"""The auth service as a real process on the real broker, over HTTP.

Two `liveward serve auth` processes share one keyring file; the session's Faust worker
folds revocations into the list both of them enforce. Geo comes from the test MaxMind
databases the access suite writes, the policy from a small file of the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from confluent_kafka import Consumer

from infra.processes import ManagedProcess, wait_until
from liveward.settings import AuthSettings, ServiceSettings, Settings
from services.auth.issuance import TokenTerms, build_claims
from services.auth.server import keyring_path
from services.auth.signing_keys import (
    Keyring,
    KeyringFile,
    RotationSchedule,
    SigningKey,
    rotate,
)
from services.auth.tokens import CLOCK_SKEW_S, GeoBinding, TokenVerifier, sign_token
from streams.codec import AvroEvent, default_codec
from streams.consumer import consumer_config
from streams.events import SubscriberEntitlements, TokenIssued, TokenUsed, UseDecision
from tests.fixtures.geo import write_geo_databases

ADMIN_KEY, APP_KEY = "it-admin-key", "it-app-key"
ORIGIN = {"Origin": "https://player.example"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}", **ORIGIN}
APP = {"Authorization": f"Bearer {APP_KEY}", **ORIGIN}
# In the test databases: Stockholm on Bredband2 (AS29518), Washington on AS209, a Tor exit.
SE_IP, SE_IP_2, US_IP, TOR_IP = "89.160.20.112", "89.160.20.140", "216.160.83.56", "81.2.69.142"

POLICY = """
unknown_content = "deny"

[default]
device_classes = ["*"]

[content."sports/*"]
ip_binding = "asn"

[content."news/*"]
ip_binding = "network"
"""


@dataclass(frozen=True)
class AuthEdge:
    settings: Settings
    url: str
    second_url: str


def _start(settings: Settings, name: str, port: int) -> ManagedProcess:
    process = ManagedProcess(
        name=name,
        pid_file=settings.state_dir / "pids" / f"test-{name}.pid",
        log_file=settings.log_dir / f"test-{name}.log",
    )
    process.start(
        [sys.executable, "-m", "liveward.cli", "serve", "auth", "--port", str(port)],
        env={**os.environ, **settings.as_env()},
    )
    return process


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def auth(
    worker: Settings, port_offset: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthEdge]:
    """Two auth processes on one keyring, against the session's broker and worker."""
    files = tmp_path_factory.mktemp("auth")
    geo = write_geo_databases(files / "geo")
    policy = files / "policy.toml"
    policy.write_text(POLICY)
    port = 18081 + port_offset
    settings = worker.model_copy(
        update={
            "services": ServiceSettings(auth_port=port),
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
    processes = [_start(settings, "auth", port), _start(settings, "auth-2", port + 100)]
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 100}"]
    try:
        for process, url in zip(processes, urls, strict=True):
            ready = wait_until(partial(_healthy, url), timeout=90, interval=0.2)
            assert ready, f"{process.name} never became ready:\n{process.log_tail(40)}"
        yield AuthEdge(settings, urls[0], urls[1])
    finally:
        for process in processes:
            process.stop()
    for process in processes:
        assert "Traceback" not in process.log_tail(200), process.log_tail(60)


@pytest.fixture
def client(auth: AuthEdge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth.url, timeout=10.0) as http:
        yield http


def _viewer(client: httpx.Client, **fields: Any) -> str:
    viewer_id = f"viewer-{uuid.uuid4().hex[:10]}"
    body = {
        "packages": ["sports"],
        "device_classes": ["tv", "web"],
        "home_country": "SE",
        "max_concurrent_streams": 4,
        **fields,
    }
    response = client.put(f"/v1/subscribers/{viewer_id}", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    return viewer_id


def _issue(client: httpx.Client, viewer_id: str, **changes: str) -> httpx.Response:
    body = {
        "viewer_id": viewer_id,
        "content_id": "sports/final",
        "device_id": f"device-{viewer_id}",
        "device_class": "tv",
        "client_ip": SE_IP,
        **changes,
    }
    return client.post("/v1/tokens", json=body, headers=APP)


def _token(client: httpx.Client, viewer_id: str, **changes: str) -> dict[str, Any]:
    response = _issue(client, viewer_id, **changes)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **ORIGIN, **extra}


def _introspect(
    client: httpx.Client, token: str, content: str = "sports/final", ip: str = SE_IP
) -> httpx.Response:
    # The test acts as an edge service reporting where its player is: that takes its key.
    return client.post(
        "/v1/tokens/introspect",
        json={"content_id": content, "client_ip": ip},
        headers=_bearer(token, **{"X-Api-Key": APP_KEY}),
    )


def test_a_player_cannot_claim_an_address_at_introspection(client: httpx.Client) -> None:
    token = _token(client, _viewer(client))["token"]
    response = client.post(
        "/v1/tokens/introspect",
        json={"content_id": "sports/final", "client_ip": SE_IP},
        headers=_bearer(token),
    )
    _refused(response, 401, "api-key-invalid")


def _refused(response: httpx.Response, status: int, reason: str) -> None:
    assert (response.status_code, response.json().get("error")) == (status, reason), response.text
    assert response.headers["access-control-allow-origin"] == "*"


def _revoke(client: httpx.Client, scope: str, subject: str) -> dict[str, Any]:
    response = client.post(
        "/v1/revocations",
        json={"scope": scope, "subject": subject, "reason": "integration-test"},
        headers=ADMIN,
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _find(
    settings: Settings, topic: str, event_type: type[AvroEvent], match: Callable[[Any], bool]
) -> Any:
    """The first event on topic that matches, read from the beginning (30 s at most)."""
    consumer = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    codec = default_codec()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is not None or message.value() is None:
                    continue
                event = codec.decode_as(message.value() or b"", event_type)
                if match(event):
                    return event
    finally:
        consumer.close()
    raise AssertionError(f"no matching {event_type.__name__} on {topic}")


def test_issue_verify_renew_revoke_story(auth: AuthEdge, client: httpx.Client) -> None:
    viewer_id = _viewer(client)
    first = _token(client, viewer_id)
    assert set(first) == {"token", "token_id", "session_id", "expires_at", "kid"}

    # Anyone holding the JWKS verifies it; the kid in the header is published there.
    jwks = client.get("/.well-known/jwks.json").json()
    verifier = TokenVerifier.from_jwks(
        jwks, issuer=auth.settings.auth.issuer, audience=auth.settings.auth.audience
    )
    claims = verifier.verify(first["token"], now=time.time())
    assert (claims.viewer_id, claims.geo.country, claims.geo.asn) == (viewer_id, "SE", 29518)
    assert jwt.get_unverified_header(first["token"])["kid"] == first["kid"]
    issued = _find(
        auth.settings, "auth.tokens-issued", TokenIssued, lambda e: e.token_id == first["token_id"]
    )
    assert (issued.ip_prefix, issued.signing_key_id) == ("89.160.20.0/24", first["kid"])

    # Renewal through the trusted proxy, from another address in the same network.
    renewed = client.post(
        "/v1/tokens/renew", headers=_bearer(first["token"], **{"X-Forwarded-For": SE_IP_2})
    )
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()
    assert second["session_id"] == first["session_id"] != second["token_id"]
    _find(
        auth.settings,
        "auth.tokens-issued",
        TokenIssued,
        lambda e: e.token_id == second["token_id"] and e.renewed_from == first["token_id"],
    )

    allowed = _introspect(client, second["token"])
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["sid"] == first["session_id"]
    use = _find(
        auth.settings, "auth.tokens-used", TokenUsed, lambda e: e.token_id == second["token_id"]
    )
    assert (use.decision, use.service, use.ip_prefix, use.asn) == (
        UseDecision.ALLOWED,
        "auth-introspect",
        "89.160.20.0/24",
        29518,
    )

    # Revoking the session: the worker folds it, both processes enforce it.
    started = time.monotonic()
    _revoke(client, "session", first["session_id"])
    enforced = wait_until(
        lambda: _introspect(client, second["token"]).status_code == 401, timeout=30, interval=0.02
    )
    elapsed_ms = (time.monotonic() - started) * 1000
    assert enforced, "the session revocation was never enforced"
    print(f"\nrevocation API call → refused at introspection: {elapsed_ms:.0f} ms")
    _refused(_introspect(client, second["token"]), 401, "session-revoked")
    with httpx.Client(base_url=auth.second_url, timeout=10.0) as other:
        assert wait_until(
            lambda: _introspect(other, second["token"]).status_code == 401, timeout=30
        )
        _refused(_introspect(other, second["token"]), 401, "session-revoked")
    _refused(
        client.post("/v1/tokens/renew", headers=_bearer(second["token"])), 401, "session-revoked"
    )


def test_a_viewer_revocation_kills_old_tokens_at_once_and_allows_a_fresh_sign_in(
    client: httpx.Client,
) -> None:
    viewer_id = _viewer(client)
    old = _token(client, viewer_id)
    answer = _revoke(client, "viewer", viewer_id)
    assert answer["session_version"] == 1
    # At once, in the process that took the revocation: the version moved on.
    response = _introspect(client, old["token"])
    assert response.status_code == 401, response.text
    assert response.json()["error"] in {"session-version-stale", "viewer-revoked"}
    stored = client.get(f"/v1/subscribers/{viewer_id}", headers=ADMIN).json()
    assert stored["session_version"] == 1
    time.sleep(0.01)  # a token issued in the same millisecond counts as before it
    fresh = _token(client, viewer_id)
    assert _introspect(client, fresh["token"]).status_code == 200


def test_tokens_of_one_process_verify_at_the_other(auth: AuthEdge, client: httpx.Client) -> None:
    viewer_id = _viewer(client)
    with httpx.Client(base_url=auth.second_url, timeout=10.0) as other:
        # The other process learns of the new subscriber from the topic, a moment later.
        assert wait_until(lambda: _issue(other, viewer_id).status_code == 200, timeout=10)
        token = _token(other, viewer_id)
        assert _introspect(client, token["token"]).status_code == 200
        assert (
            other.get("/.well-known/jwks.json").json()
            == client.get("/.well-known/jwks.json").json()
        )


def test_policy_decisions_at_issue_and_introspection(client: httpx.Client) -> None:
    viewer_id = _viewer(client, packages=["*"])
    _refused(_issue(client, viewer_id, client_ip=TOR_IP), 403, "anonymizer-tor")
    _refused(_issue(client, viewer_id, content_id="movies/unknown"), 403, "unknown-content")
    # news/* binds a token to its /24, sports/* to its ASN. One session per probe: the
    # theft detector revokes a session seen from two countries, as it should.
    news = _token(client, viewer_id, content_id="news/live")["token"]
    _refused(_introspect(client, news, "news/live", ip=US_IP), 403, "ip-moved-network")
    sports = _token(client, viewer_id, content_id="news/live")["token"]
    _refused(_introspect(client, sports, "sports/final", ip=US_IP), 403, "ip-moved-asn")
    moved = _token(client, viewer_id, content_id="news/live")["token"]
    assert _introspect(client, moved, "sports/final", ip=SE_IP_2).status_code == 200


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({"viewer_id": "nobody-at-all"}, 403, "unknown-viewer"),
        ({"content_id": "news/live"}, 403, "not-entitled"),
        ({"device_class": "toaster"}, 403, "unknown-device-class"),
        ({"device_class": "mobile"}, 403, "device-class-not-allowed"),
        ({"client_ip": "10.1.2.3"}, 403, "private-address"),
        ({"client_ip": "nonsense"}, 400, "bad-ip"),
    ],
)
def test_refused_token_requests(
    client: httpx.Client, changes: dict[str, str], status: int, reason: str
) -> None:
    viewer_id = _viewer(client)
    _refused(_issue(client, **{"viewer_id": viewer_id, **changes}), status, reason)


def test_bad_api_keys_and_malformed_bodies(client: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {APP_KEY}"}):
        response = client.put(
            "/v1/subscribers/v1", json={"device_classes": ["tv"]}, headers={**headers, **ORIGIN}
        )
        _refused(response, 401, "api-key-invalid")
    malformed = client.post(
        "/v1/tokens", content=b'{"viewer_id": ', headers={**APP, "Content-Type": "application/json"}
    )
    _refused(malformed, 400, "malformed-request")
    _refused(
        client.put("/v1/subscribers/v1", json={"device_classes": ["toaster"]}, headers=ADMIN),
        400,
        "subscriber-invalid",
    )


def _forged(auth: AuthEdge, viewer_id: str, signer: SigningKey, **changes: Any) -> str:
    """A token with chosen claims, signed with a key of the real keyring or a stranger's."""
    terms = TokenTerms(auth.settings.auth.issuer, auth.settings.auth.audience, 300)
    subscriber = SubscriberEntitlements(
        event_id="e", occurred_at=0, region="eu-west", viewer_id=viewer_id, packages=("sports",),
        content_ids=(), device_classes=("tv",), max_concurrent_streams=2, home_country="SE",
        session_version=0, active=True,
    )  # fmt: skip
    claims = build_claims(
        terms, subscriber, now=time.time(), token_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()), content_id="sports/final", device_id="d",
        device_class="tv", geo=GeoBinding("SE", "89.160.20.0/24", 29518),
        viewer_ref="v" * 64, device_ref="d" * 64,
    )  # fmt: skip
    return sign_token(replace(claims, **changes), signer.kid, signer.signer())


def _flip(segment: str) -> str:
    """segment with one base64url character in the middle changed."""
    middle = len(segment) // 2
    return segment[:middle] + ("A" if segment[middle] != "A" else "B") + segment[middle + 1 :]


def test_attack_tokens_are_refused_with_their_reason(auth: AuthEdge, client: httpx.Client) -> None:
    viewer_id = _viewer(client)
    good = _token(client, viewer_id)["token"]
    head, body, signature = good.split(".")
    ring = KeyringFile(keyring_path(auth.settings)).load()
    real = ring.signing_key(time.time())
    assert real is not None
    schedule = RotationSchedule(3600, 300, CLOCK_SKEW_S)
    stranger = rotate(Keyring(), int(time.time()), lambda nb: SigningKey.generate(
        not_before=nb, schedule=schedule)).keys[0]  # fmt: skip
    now = int(time.time())
    attacks = {
        "token-malformed": "garbage",
        "token-too-large": "a" * 5000,
        "alg-not-allowed": jwt.encode({"sub": viewer_id}, "s" * 32, algorithm="HS256"),
        "signature-invalid": f"{head}.{body}.{_flip(signature)}",
        "kid-unknown": _forged(auth, viewer_id, stranger),
        "token-expired": _forged(auth, viewer_id, real, expires_at=now - 600),
        "token-not-yet-valid": _forged(
            auth, viewer_id, real, issued_at=now + 600, not_before=now + 600
        ),
        "audience-invalid": _forged(auth, viewer_id, real, audience="somebody-else"),
        "issuer-invalid": _forged(auth, viewer_id, real, issuer="evil"),
        "jwe-invalid": "a.b.c.d.e",
    }
    for reason, token in attacks.items():
        _refused(_introspect(client, token), 401, reason)
    _refused(client.post("/v1/tokens/renew", headers=ORIGIN), 401, "token-missing")


def test_the_bulk_loader_feeds_the_service(
    auth: AuthEdge, client: httpx.Client, tmp_path: Path
) -> None:
    loaded, updated = f"bulk-{uuid.uuid4().hex[:8]}", _viewer(client)
    _revoke(client, "viewer", updated)
    good = tmp_path / "subscribers.csv"
    good.write_text(
        "viewer_id,packages,device_classes,home_country\n"
        f"{loaded},sports,tv,SE\n"
        f"{updated},sports;news,tv,SE\n"
    )
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"viewer_id": "ok-1", "device_classes": ["tv"]}\n{oops\n')
    env = {**os.environ, **auth.settings.as_env()}
    command = [sys.executable, "-m", "liveward.cli", "subscribers", "load"]
    refused = subprocess.run(
        [*command, str(bad)], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert "broken.jsonl:2" in refused.stdout and "nothing loaded" in refused.stdout
    result = subprocess.run(
        [*command, str(good)], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded 2 subscribers" in result.stdout

    assert wait_until(lambda: _issue(client, loaded).status_code == 200, timeout=10)
    stored = client.get(f"/v1/subscribers/{updated}", headers=ADMIN).json()
    assert stored["packages"] == ["news", "sports"]
    assert stored["session_version"] == 1, "a reload keeps the version a revocation set"


def test_the_stream_limit_holds_across_instances(auth: AuthEdge, client: httpx.Client) -> None:
    viewer_id = _viewer(client, max_concurrent_streams=1)
    _token(client, viewer_id)
    # The other instance learns of the first session from auth.tokens-issued (in ms);
    # one attempt only: a success would itself be a second stream.
    time.sleep(2)
    with httpx.Client(base_url=auth.second_url, timeout=10.0) as other:
        response = _issue(other, viewer_id, device_id="another-device")
    _refused(response, 403, "too-many-streams")
