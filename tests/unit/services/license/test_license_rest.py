"""The license edge over a real ASGI client: grants, the period window, every refusal, events.

Keys, tokens, revocations, geo and Kafka are in memory, and the clock is the test's, so
period boundaries are crossed on purpose rather than waited for.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi.testclient import TestClient

from services.keys.epochs import build_key_epoch, new_master_key
from services.license.clearkey import b64url, b64url_decode
from streams.events import LicenseDecision, LicenseIssued, TokenUsed, UseDecision
from tests.unit.services.license.conftest import (
    AWAY_IP,
    HOME_IP,
    HOME_IP_2,
    P0,
    PERIOD_MS,
    PERIOD_S,
    T0_MS,
    TOR_IP,
    LicenseWorld,
)

ORIGIN = "https://player.example"


def _headers(token: str | None, ip: str = HOME_IP) -> dict[str, str]:
    headers = {"Origin": ORIGIN, "X-Forwarded-For": ip}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _license(
    client: TestClient, token: str | None, kids: list[bytes], ip: str = HOME_IP, **params: str
) -> Any:
    return client.post(
        "/v1/license/clearkey",
        json={"kids": [b64url(kid) for kid in kids], "type": "temporary"},
        headers=_headers(token, ip),
        params=params,
    )


def _refused(response: Any, status: int, reason: str) -> None:
    assert (response.status_code, response.json()["error"]) == (status, reason), response.text
    # A browser hides a refusal from the player's script without CORS headers.
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "no-store"


def _jwk_keys(response: Any) -> dict[bytes, bytes]:
    body = response.json()
    assert body["type"] == "temporary"
    assert all(k["kty"] == "oct" and "=" not in k["kid"] + k["k"] for k in body["keys"])
    return {b64url_decode(k["kid"]): b64url_decode(k["k"]) for k in body["keys"]}


def test_a_clearkey_license_decrypts_what_the_derived_key_encrypted(
    world: LicenseWorld, client: TestClient
) -> None:
    key = world.key(P0)
    iv = bytes(range(16))
    sample = b"one CMAF sample of a live stream" * 4
    encryptor = Cipher(algorithms.AES(key.key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(sample) + encryptor.finalize()

    response = _license(client, world.token(), [key.key_id_bytes])

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "no-store"
    licensed = _jwk_keys(response)
    decryptor = Cipher(algorithms.AES(licensed[key.key_id_bytes]), modes.CBC(iv)).decryptor()
    assert decryptor.update(encrypted) + decryptor.finalize() == sample


def test_a_license_holds_the_current_and_next_period_so_a_boundary_needs_no_new_one(
    world: LicenseWorld, client: TestClient
) -> None:
    token = world.token()
    current, following = world.key(P0), world.key(P0 + 1)
    licensed = _jwk_keys(_license(client, token, [current.key_id_bytes]))
    assert licensed == {current.key_id_bytes: current.key, following.key_id_bytes: following.key}

    # Across the boundary the player already holds the key the new period is encrypted
    # with; what the service would now answer for that period is the same key.
    world.clock.now += PERIOD_S
    assert world.keys.period_at(world.clock.ms()).number == P0 + 1
    after = _jwk_keys(_license(client, token, [following.key_id_bytes]))
    assert after[following.key_id_bytes] == licensed[following.key_id_bytes]
    assert world.key(P0 + 2).key_id_bytes in after
    assert current.key_id_bytes not in after


def test_a_late_player_may_name_a_period_that_just_ended_but_nothing_older(
    world: LicenseWorld, client: TestClient
) -> None:
    token = world.token()
    world.clock.now += PERIOD_S  # 10 s into P0 + 1: P0 ended 10 s ago, inside the grace
    late = _license(client, token, [world.key(P0).key_id_bytes])
    assert set(_jwk_keys(late)) == {world.key(p).key_id_bytes for p in (P0, P0 + 1, P0 + 2)}

    world.clock.now += 25  # 35 s into P0 + 1: beyond the 30-s grace
    _refused(_license(client, token, [world.key(P0).key_id_bytes]), 404, "unknown-key-id")


def test_key_ids_beyond_the_next_period_or_of_other_content_are_unknown(
    world: LicenseWorld, client: TestClient
) -> None:
    token = world.token()
    _refused(_license(client, token, [world.key(P0 + 2).key_id_bytes]), 404, "unknown-key-id")
    other = world.key(P0, "sports/other").key_id_bytes
    _refused(_license(client, token, [other]), 404, "unknown-key-id")
    # One unknown key id among known ones refuses the whole request.
    mixed = [world.key(P0).key_id_bytes, bytes(16)]
    _refused(_license(client, token, mixed), 404, "unknown-key-id")


def test_the_hls_key_endpoint_answers_the_same_raw_key(
    world: LicenseWorld, client: TestClient
) -> None:
    token = world.token()
    for period in (P0, P0 + 1):
        response = client.get(f"/v1/keys/sports/final/{period}", headers=_headers(token))
        assert response.status_code == 200, response.text
        assert response.content == world.key(period).key
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["cache-control"] == "no-store"
    # EXT-X-KEY URIs that cannot carry a header carry the token in the query.
    by_query = client.get(
        f"/v1/keys/sports/final/{P0}", params={"token": token}, headers=_headers(None)
    )
    assert by_query.content == world.key(P0).key


def test_hls_periods_outside_the_window_are_unknown(
    world: LicenseWorld, client: TestClient
) -> None:
    token = world.token()
    for period in (P0 + 2, P0 - 2, 0):  # (P0 - 1 ended 10 s ago: inside the grace)
        response = client.get(f"/v1/keys/sports/final/{period}", headers=_headers(token))
        _refused(response, 404, "unknown-period")
    world.clock.now += PERIOD_S  # now P0 is a late period inside the grace
    response = client.get(f"/v1/keys/sports/final/{P0}", headers=_headers(token))
    assert response.content == world.key(P0).key
    for bad in ("-1", "12a", "9" * 30):
        _refused(
            client.get(f"/v1/keys/sports/final/{bad}", headers=_headers(token)), 400, "bad-period"
        )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "token-missing"),
        ("garbage", "token-malformed"),
        ("a.b.c", "token-malformed"),
    ],
)
def test_bad_tokens_are_401(
    world: LicenseWorld, client: TestClient, token: str | None, reason: str
) -> None:
    response = _license(client, token, [world.key(P0).key_id_bytes])
    _refused(response, 401, reason)
    assert 'Bearer error="invalid_token"' in response.headers["www-authenticate"]


def test_expired_forged_and_foreign_tokens_are_401(world: LicenseWorld, client: TestClient) -> None:
    kid = world.key(P0).key_id_bytes
    expired = world.token(expires_at=int(world.clock.now) - 31)
    _refused(_license(client, expired, [kid]), 401, "token-expired")
    body, _, signature = world.token().rpartition(".")
    forged = f"{body}.{signature[:-4]}AAAA"
    _refused(_license(client, forged, [kid]), 401, "signature-invalid")
    _refused(_license(client, world.token(audience="elsewhere"), [kid]), 401, "audience-invalid")


def test_bad_tokens_write_nothing_to_kafka(world: LicenseWorld, client: TestClient) -> None:
    _license(client, "garbage", [world.key(P0).key_id_bytes])
    assert world.events.events() == []


def test_revoked_tokens_are_403(world: LicenseWorld, client: TestClient) -> None:
    claims = world.claims()
    token = world.token(token_id=claims.token_id, session_id=claims.session_id)
    kid = world.key(P0).key_id_bytes
    assert _license(client, token, [kid]).status_code == 200
    world.revocations.sessions.add(claims.session_id)
    _refused(_license(client, token, [kid]), 403, "session-revoked")
    hls = client.get(f"/v1/keys/sports/final/{P0}", headers=_headers(token))
    _refused(hls, 403, "session-revoked")


def test_content_the_token_does_not_entitle_is_403(world: LicenseWorld, client: TestClient) -> None:
    token = world.token()
    response = client.get(f"/v1/keys/sports/other/{P0}", headers=_headers(token))
    _refused(response, 403, "not-entitled")
    other = world.key(P0, "sports/other").key_id_bytes
    _refused(_license(client, token, [other], content="sports/other"), 403, "not-entitled")
    # A package entitles its content: then the other content is licensed.
    packaged = world.token(entitlements=world.claims().entitlements.__class__(("sports",), 2, "SE"))
    assert _license(client, packaged, [other], content="sports/other").status_code == 200


def test_the_geo_ip_and_device_policy_applies_with_the_tokens_binding(
    world: LicenseWorld, client: TestClient
) -> None:
    kid = world.key(P0).key_id_bytes
    token = world.token()
    # Same /24, same ASN: fine (a player moving within its network).
    assert _license(client, token, [kid], ip=HOME_IP_2).status_code == 200
    _refused(_license(client, token, [kid], ip=AWAY_IP), 403, "ip-moved-asn")
    _refused(_license(client, token, [kid], ip=TOR_IP), 403, "anonymizer-tor")
    tv = world.token(device=world.claims().device.__class__("device-1", "console"))
    _refused(_license(client, tv, [kid]), 403, "device-class-not-allowed")
    news = world.token(content_id="news/tonight")
    news_kid = world.key(P0, "news/tonight").key_id_bytes
    _refused(_license(client, news, [news_kid]), 403, "country-not-allowed")
    assert _license(client, news, [news_kid], ip=AWAY_IP).status_code == 200


def test_content_the_policy_book_does_not_list_is_404(
    world: LicenseWorld, client: TestClient
) -> None:
    token = world.token(content_id="music/live")
    response = client.get(f"/v1/keys/music/live/{P0}", headers=_headers(token))
    _refused(response, 404, "unknown-content")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "malformed-request"),
        (b"[]", "malformed-request"),
        (b'{"kids": []}', "malformed-request"),
        (b'{"kids": ["AAAA"]}', "bad-key-id"),
        (b'{"kids": ["not base64!"]}', "bad-key-id"),
        (b'{"kids": [7]}', "bad-key-id"),
        (b'{"kids": ["AAAAAAAAAAAAAAAAAAAAAA"], "type": "persistent-license"}',
         "unsupported-session-type"),
    ],
)  # fmt: skip
def test_malformed_license_requests_are_400(
    world: LicenseWorld, client: TestClient, body: bytes, reason: str
) -> None:
    response = client.post("/v1/license/clearkey", content=body, headers=_headers(world.token()))
    _refused(response, 400, reason)


def test_a_grant_is_stored_before_it_is_answered_and_uses_are_signalled(
    world: LicenseWorld, client: TestClient
) -> None:
    claims = world.claims()
    token = world.token(token_id=claims.token_id, session_id=claims.session_id)
    response = _license(client, token, [world.key(P0).key_id_bytes])
    ((topic, record),) = world.events.stored
    assert topic == "drm.licenses" and isinstance(record, LicenseIssued)
    assert record.license_id == response.headers["x-license-id"]
    assert (record.decision, record.reason, record.protocol) == (
        LicenseDecision.GRANTED,
        "allowed",
        "clearkey-rest",
    )
    assert record.key_ids == (world.key(P0).key_id, world.key(P0 + 1).key_id)
    assert (record.viewer_ref, record.session_id) == (claims.viewer_ref, claims.session_id)
    assert record.latency_us > 0
    ((used_topic, use),) = world.events.signalled
    assert used_topic == "auth.tokens-used" and isinstance(use, TokenUsed)
    assert (use.service, use.decision, use.ip_prefix, use.asn, use.country) == (
        "license-rest",
        UseDecision.ALLOWED,
        "89.160.20.0/24",
        29518,
        "SE",
    )


def test_a_refusal_after_the_token_verified_is_signalled_not_waited_for(
    world: LicenseWorld, client: TestClient
) -> None:
    token = world.token()
    client.get(f"/v1/keys/sports/final/{P0}", headers=_headers(token, TOR_IP))
    assert world.events.stored == []
    use, refusal = (event for _, event in world.events.signalled)
    assert isinstance(use, TokenUsed) and isinstance(refusal, LicenseIssued)
    assert (use.service, use.decision, use.reason) == (
        "license-keys",
        UseDecision.DENIED,
        "anonymizer-tor",
    )
    assert (refusal.decision, refusal.reason, refusal.key_ids, refusal.protocol) == (
        LicenseDecision.REFUSED,
        "anonymizer-tor",
        (),
        "hls-key",
    )


def test_no_keys_leave_when_the_license_record_cannot_be_stored(
    world: LicenseWorld, client: TestClient
) -> None:
    world.events.fail_stores = True
    response = _license(client, world.token(), [world.key(P0).key_id_bytes])
    _refused(response, 503, "delivery-failed")
    assert "keys" not in response.json()
    assert response.headers["retry-after"] == "1"


def test_before_the_first_jwks_every_request_is_503(world: LicenseWorld) -> None:
    from services.license.rest import create_license_app
    from services.license.service import LicenseService
    from services.license.tokens import PlaybackTokens

    unfetched = PlaybackTokens(world.jwks, issuer="i", audience="a")
    service = LicenseService(
        region="eu-west",
        tokens=unfetched,
        revocations=world.revocations,
        keys=world.keys,
        geo=world.service._geo,
        policies=world.service._policies,
        events=world.events,
        ready=unfetched.ready,
    )
    app = create_license_app(service, trusted_proxies=())
    with TestClient(app, client=("127.0.0.1", 1)) as http:
        assert http.get("/healthz").status_code == 503
        _refused(_license(http, world.token(), [bytes(16)]), 503, "not-ready")


def test_decisions_are_counted_in_metrics(world: LicenseWorld, client: TestClient) -> None:
    _license(client, world.token(), [world.key(P0).key_id_bytes])
    _license(client, "garbage", [world.key(P0).key_id_bytes])
    text = client.get("/metrics").text
    assert (
        'liveward_license_decisions_total{decision="GRANTED",protocol="clearkey-rest",'
        'reason="allowed"} 1.0' in text
    )
    assert 'decision="REFUSED",protocol="clearkey-rest",reason="token-malformed"} 1.0' in text


def test_preflight_allows_the_authorization_header(client: TestClient) -> None:
    response = client.options(
        "/v1/license/clearkey",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_oversized_license_requests_are_413_before_they_are_parsed(
    world: LicenseWorld, client: TestClient
) -> None:
    body = b'{"kids": ["' + b"A" * 20_000 + b'"]}'
    response = client.post("/v1/license/clearkey", content=body, headers=_headers(world.token()))
    _refused(response, 413, "body-too-large")


def test_license_routes_are_counted_in_the_edge_request_metrics(
    world: LicenseWorld, client: TestClient
) -> None:
    client.get(f"/v1/keys/sports/final/{P0}", headers=_headers(world.token()))
    text = client.get("/metrics").text
    assert (
        'liveward_http_requests_total{route="/v1/keys/{content_id:path}/{period}",'
        'service="license",status="200"} 1.0' in text
    )


def test_the_first_epochs_earlier_periods_stay_answerable_within_the_grace(
    world: LicenseWorld, client: TestClient
) -> None:
    # A fresh system: the first epoch (10-s periods) began at T0, 15 s ago; a player
    # behind the live edge still needs its first period's key.
    world.keys.remove("epoch-1")
    world.keys.add(
        build_key_epoch(
            master_key=new_master_key(),
            epoch_id="epoch-short",
            started_at=T0_MS,
            period_seconds=10,
            emergency=False,
            keks={"eu-west": world.keys._keks},  # the region's own KEK
            emitted_by="eu-west",
            event_id="event-epoch-short",
            occurred_at=T0_MS - PERIOD_MS,
        )
    )
    world.clock.now = T0_MS / 1000 + 15
    first = T0_MS // 10_000
    token = world.token()
    answered = client.get(f"/v1/keys/sports/final/{first}", headers=_headers(token))
    assert answered.status_code == 200, answered.text
    assert answered.content == world.key(first).key
    before = client.get(f"/v1/keys/sports/final/{first - 1}", headers=_headers(token))
    _refused(before, 404, "unknown-period")
