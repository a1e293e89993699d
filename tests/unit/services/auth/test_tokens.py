"""Signing and verifying tokens: a good one verifies, every attack is refused with a reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.auth.errors import TokenRejected
from services.auth.issuance import TokenTerms, build_claims
from services.auth.signing_keys import (
    Keyring,
    RotationSchedule,
    SigningKey,
    jwks_document,
    rotate,
)
from services.auth.tokens import (
    CLOCK_SKEW_S,
    REJECTION_REASONS,
    GeoBinding,
    PlaybackClaims,
    TokenVerifier,
    encrypt_token,
    sign_token,
)
from streams.events import SubscriberEntitlements

NOW = 1_800_000_000.25
TERMS = TokenTerms(issuer="liveward-auth", audience="liveward-playback", lifetime_s=300)
SCHEDULE = RotationSchedule(rotation_s=600, token_lifetime_s=300, clock_skew_s=CLOCK_SKEW_S)
SUBSCRIBER = SubscriberEntitlements(
    event_id="e1",
    occurred_at=0,
    region="eu-west",
    viewer_id="viewer-1",
    packages=("sports",),
    content_ids=("news/live",),
    device_classes=("tv", "web"),
    max_concurrent_streams=2,
    home_country="DE",
    session_version=3,
    active=True,
)
JWE_KEY = os.urandom(32)


def make_claims(**changes: object) -> PlaybackClaims:
    claims = build_claims(
        TERMS,
        SUBSCRIBER,
        now=NOW,
        token_id="token-1",
        session_id="session-1",
        content_id="sports/final",
        device_id="device-1",
        device_class="tv",
        geo=GeoBinding(country="DE", network="203.0.113.0/24", asn=64500),
        viewer_ref="v" * 64,
        device_ref="d" * 64,
    )
    return replace(claims, **changes)  # type: ignore[arg-type]


def new_key(not_before: int) -> SigningKey:
    return SigningKey.generate(not_before=not_before, schedule=SCHEDULE)


@pytest.fixture
def ring() -> Keyring:
    return rotate(Keyring(), int(NOW), new_key)


def verifier_for(ring: Keyring, **options: object) -> TokenVerifier:
    return TokenVerifier.from_jwks(
        jwks_document(ring, NOW),
        issuer=TERMS.issuer,
        audience=TERMS.audience,
        retired_kids=ring.retired_kids(),
        **options,
    )


def signed(ring: Keyring, claims: PlaybackClaims | None = None) -> str:
    key = ring.signing_key(NOW)
    assert key is not None
    return sign_token(claims or make_claims(), key.kid, key.signer())


def rejection(verifier: TokenVerifier, token: str | None, now: float = NOW) -> str:
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token, now=now)
    assert caught.value.reason in REJECTION_REASONS
    return caught.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: Mapping[str, object], payload: Mapping[str, object], sign: bytes = b"") -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return head + "." + b64(sign)


def test_a_signed_token_verifies_from_the_jwks_alone(ring: Keyring) -> None:
    token = signed(ring)
    claims = verifier_for(ring).verify(token, now=NOW + 10)
    assert claims == make_claims()
    assert claims.expires_at == int(NOW) + 300
    assert claims.issued_at_ms == 1_800_000_000_250
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == ring.signing_key(NOW).kid  # type: ignore[union-attr]


def test_the_payload_carries_the_documented_claims(ring: Keyring) -> None:
    payload = jwt.decode(signed(ring), options={"verify_signature": False})
    assert set(payload) == {
        "iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "cid",
        "ent", "geo", "dev", "vref", "dref", "sv",
    }  # fmt: skip
    assert payload["sub"] == "viewer-1" and payload["sv"] == 3
    assert payload["geo"] == {"country": "DE", "network": "203.0.113.0/24", "asn": 64500}
    assert payload["dev"] == {"id": "device-1", "class": "tv"}
    assert payload["ent"] == {"packages": ["sports"], "max_streams": 2, "home_country": "DE"}


def test_an_encrypted_token_verifies_with_the_content_key(ring: Keyring) -> None:
    token = encrypt_token(signed(ring), JWE_KEY)
    assert token.count(".") == 4
    assert "viewer-1" not in base64.urlsafe_b64decode(token.split(".")[3] + "==").decode("latin1")
    claims = verifier_for(ring, encryption_key=JWE_KEY).verify(token, now=NOW)
    assert claims.viewer_id == "viewer-1"


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_token_missing(ring: Keyring, token: str | None) -> None:
    assert rejection(verifier_for(ring), token) == "token-missing"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "not a token at all",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "eyJub3QganNvbg.e30.c2ln",  # the header is not JSON
        forge({"alg": "EdDSA", "kid": "k"}, {})[:-1] + "@",
    ],
)
def test_garbage_is_token_malformed(ring: Keyring, token: str) -> None:
    assert rejection(verifier_for(ring), token) == "token-malformed"


def test_an_oversized_token_is_refused_before_parsing(ring: Keyring) -> None:
    assert rejection(verifier_for(ring), "a." * 3000 + "b") == "token-too-large"


def test_alg_none_is_refused(ring: Keyring) -> None:
    kid = ring.signing_key(NOW).kid  # type: ignore[union-attr]
    unsigned: object = None
    token = jwt.encode(make_claims().to_payload(), unsigned, algorithm="none", headers={"kid": kid})  # type: ignore[arg-type]
    assert rejection(verifier_for(ring), token) == "alg-not-allowed"


def test_hs256_signed_with_the_public_key_is_refused(ring: Keyring) -> None:
    key = ring.signing_key(NOW)
    assert key is not None
    public_pem = (
        key.signer()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    unsigned = forge(header, make_claims().to_payload()).rsplit(".", 1)[0]
    for secret in (public_pem, key.public_key):
        mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        assert rejection(verifier_for(ring), unsigned + "." + b64(mac)) == "alg-not-allowed"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "Ed25519", "eddsa"])
def test_any_algorithm_but_eddsa_is_refused(ring: Keyring, alg: str) -> None:
    token = forge({"alg": alg, "kid": "k"}, make_claims().to_payload(), b"sig")
    assert rejection(verifier_for(ring), token) == "alg-not-allowed"


def test_a_kid_the_verifier_never_saw_is_unknown(ring: Keyring) -> None:
    stranger = rotate(Keyring(), int(NOW), new_key)
    assert rejection(verifier_for(ring), signed(stranger)) == "kid-unknown"
    no_kid = forge({"alg": "EdDSA"}, make_claims().to_payload(), b"x" * 64)
    assert rejection(verifier_for(ring), no_kid) == "kid-unknown"


def test_a_token_signed_by_a_retired_key_fails(ring: Keyring) -> None:
    token = signed(ring)
    first = ring.keys[0]
    later = rotate(ring, first.verifies_until, new_key)
    assert first.kid in later.retired_kids()
    # Valid claims at that time, so only the key's retirement refuses it.
    fresh = signed(ring, make_claims(expires_at=first.verifies_until + 300))
    verifier = verifier_for(later)
    assert rejection(verifier, fresh, now=first.verifies_until) == "kid-retired"
    assert rejection(verifier, token, now=first.verifies_until) == "kid-retired"


def test_a_token_of_the_previous_key_still_verifies_during_the_overlap(ring: Keyring) -> None:
    token = signed(ring)
    handed_over = rotate(ring, ring.keys[0].signs_until, new_key)
    at = ring.keys[0].signs_until + 1
    claims = verifier_for(handed_over).verify(token, now=min(at, NOW + 299))
    assert claims.token_id == "token-1"


def test_a_tampered_payload_fails_the_signature(ring: Keyring) -> None:
    head, _, sig = signed(ring).split(".")
    evil = dict(make_claims().to_payload(), sub="someone-else")
    tampered = head + "." + b64(json.dumps(evil).encode()) + "." + sig
    assert rejection(verifier_for(ring), tampered) == "signature-invalid"


def test_a_tampered_signature_fails(ring: Keyring) -> None:
    head, body, sig = signed(ring).split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[0] ^= 1
    assert rejection(verifier_for(ring), f"{head}.{body}.{b64(bytes(raw))}") == "signature-invalid"


@pytest.mark.parametrize("cut", [slice(0, -2), slice(0, 10), slice(1, None), slice(0, 0)])
def test_a_signature_that_is_not_64_bytes_fails_the_signature(ring: Keyring, cut: slice) -> None:
    head, body, sig = signed(ring).split(".")
    assert rejection(verifier_for(ring), f"{head}.{body}.{sig[cut]}") == "signature-invalid"


def test_expiry_and_not_before_allow_the_clock_skew_and_no_more(ring: Keyring) -> None:
    token, claims, verifier = signed(ring), make_claims(), verifier_for(ring)
    verifier.verify(token, now=claims.expires_at + CLOCK_SKEW_S - 1)
    assert rejection(verifier, token, now=claims.expires_at + CLOCK_SKEW_S) == "token-expired"
    verifier.verify(token, now=NOW - CLOCK_SKEW_S)
    assert rejection(verifier, token, now=NOW - CLOCK_SKEW_S - 1) == "token-not-yet-valid"


def test_a_token_for_another_audience_or_issuer_is_refused(ring: Keyring) -> None:
    verifier = verifier_for(ring)
    assert rejection(verifier, signed(ring, make_claims(audience="other"))) == "audience-invalid"
    assert rejection(verifier, signed(ring, make_claims(issuer="evil"))) == "issuer-invalid"


def test_validly_signed_claims_of_the_wrong_shape_are_malformed(ring: Keyring) -> None:
    key = ring.signing_key(NOW)
    assert key is not None
    for broken in ({"sv": "3"}, {"ent": None}, {"sv": True}, {"iat": "soon"}):
        payload = {**make_claims().to_payload(), **broken}
        token = jwt.encode(payload, key.signer(), algorithm="EdDSA", headers={"kid": key.kid})
        assert rejection(verifier_for(ring), token) == "token-malformed"


def _signed_raw(ring: Keyring, header: Mapping[str, object], payload: bytes) -> str:
    """A token whose signature verifies, over any header and payload bytes."""
    key = ring.signing_key(NOW)
    assert key is not None
    head = b64(json.dumps({"alg": "EdDSA", "kid": key.kid, **header}).encode()) + "." + b64(payload)
    return head + "." + b64(key.signer().sign(head.encode()))


def test_validly_signed_payloads_that_are_not_json_objects_are_malformed(ring: Keyring) -> None:
    for payload in (b"[1, 2]", b'"claims"', b"{not json", b"\xff\xfe"):
        assert rejection(verifier_for(ring), _signed_raw(ring, {}, payload)) == "token-malformed"


def test_a_validly_signed_token_with_critical_extensions_is_refused(ring: Keyring) -> None:
    payload = json.dumps(make_claims().to_payload()).encode()
    token = _signed_raw(ring, {"crit": ["b64"], "b64": False}, payload)

    assert rejection(verifier_for(ring), token) == "token-malformed"
    # The same, without crit, verifies: the refusal is for the extension alone.
    assert verifier_for(ring).verify(_signed_raw(ring, {}, payload), now=NOW) == make_claims()


def test_the_signature_covers_the_header_too(ring: Keyring) -> None:
    header, payload, signature = signed(ring).split(".")
    other = b64(
        json.dumps({**json.loads(base64.urlsafe_b64decode(header + "==")), "x": 1}).encode()
    )

    assert rejection(verifier_for(ring), f"{other}.{payload}.{signature}") == "signature-invalid"


def test_encrypted_tokens_fail_as_jwe_invalid(ring: Keyring) -> None:
    token = encrypt_token(signed(ring), JWE_KEY)
    assert rejection(verifier_for(ring), token) == "jwe-invalid", "no key configured"
    wrong_key = verifier_for(ring, encryption_key=os.urandom(32))
    assert rejection(wrong_key, token) == "jwe-invalid"
    with_key = verifier_for(ring, encryption_key=JWE_KEY)
    assert rejection(with_key, "a.b.c.d.e") == "jwe-invalid"
    parts = token.split(".")
    parts[3] = parts[3][:-2] + ("AA" if parts[3][-2:] != "AA" else "BB")
    assert rejection(with_key, ".".join(parts)) == "jwe-invalid"
    not_a_jws = encrypt_token("hello", JWE_KEY)
    assert rejection(with_key, not_a_jws) == "jwe-invalid"


def test_a_plain_token_is_still_accepted_where_tokens_are_encrypted(ring: Keyring) -> None:
    assert verifier_for(ring, encryption_key=JWE_KEY).verify(signed(ring), now=NOW)
