"""Who gets a token and what it says: refusals with reasons, claims, renewal."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.auth.errors import AccessRefused
from services.auth.issuance import (
    TokenTerms,
    build_claims,
    check_subscriber,
    renewed_claims,
    token_entitles,
)
from services.auth.tokens import GeoBinding
from streams.events import SubscriberEntitlements

TERMS = TokenTerms(issuer="iss", audience="aud", lifetime_s=300)
SUBSCRIBER = SubscriberEntitlements(
    event_id="e1",
    occurred_at=0,
    region="eu-west",
    viewer_id="viewer-1",
    packages=("sports",),
    content_ids=("news/live",),
    device_classes=("tv",),
    max_concurrent_streams=2,
    home_country="",
    session_version=1,
    active=True,
)
GEO = GeoBinding(country="DE", network="203.0.113.0/24", asn=64500)


def refusal(subscriber: SubscriberEntitlements | None, content: str, device: str) -> str:
    with pytest.raises(AccessRefused) as caught:
        check_subscriber(subscriber, content_id=content, device_class=device)
    return caught.value.reason


def test_refusals_carry_their_reason() -> None:
    assert refusal(SUBSCRIBER, "sports/final", "toaster") == "unknown-device-class"
    assert refusal(None, "sports/final", "tv") == "unknown-viewer"
    assert refusal(replace(SUBSCRIBER, active=False), "sports/final", "tv") == (
        "subscription-inactive"
    )
    assert refusal(SUBSCRIBER, "sports/final", "web") == "device-class-not-allowed"
    assert refusal(SUBSCRIBER, "movies/one", "tv") == "not-entitled"
    assert check_subscriber(SUBSCRIBER, content_id="news/live", device_class="tv") == SUBSCRIBER


def test_claims_last_one_lifetime_and_carry_the_session_version() -> None:
    claims = build_claims(
        TERMS,
        SUBSCRIBER,
        now=1_000.5004,
        token_id="t1",
        session_id="s1",
        content_id="sports/final",
        device_id="dev-1",
        device_class="tv",
        geo=GEO,
        viewer_ref="vref",
        device_ref="dref",
    )
    assert (claims.issued_at, claims.not_before, claims.expires_at) == (1_000.5, 1_000, 1_300)
    assert claims.session_version == 1
    assert claims.entitlements.home_country is None
    assert token_entitles(claims, "sports/final")
    assert token_entitles(claims, "sports/other-match"), "packages travel with the token"
    assert not token_entitles(claims, "news/live"), "single titles do not"


def test_renewal_keeps_the_session_and_device_and_takes_time_and_place_afresh() -> None:
    first = build_claims(
        TERMS, SUBSCRIBER, now=1_000.0, token_id="t1", session_id="s1",
        content_id="sports/final", device_id="dev-1", device_class="tv", geo=GEO,
        viewer_ref="vref", device_ref="dref",
    )  # fmt: skip
    moved = GeoBinding(country="DE", network="198.51.100.0/24", asn=64501)
    second = renewed_claims(TERMS, first, SUBSCRIBER, now=1_200.0, token_id="t2", geo=moved)
    assert (second.session_id, second.device, second.content_id) == (
        "s1",
        first.device,
        "sports/final",
    )
    assert (second.token_id, second.expires_at, second.geo) == ("t2", 1_500, moved)


def test_renewal_is_refused_after_a_viewer_revocation_or_when_no_longer_entitled() -> None:
    first = build_claims(
        TERMS, SUBSCRIBER, now=1_000.0, token_id="t1", session_id="s1",
        content_id="sports/final", device_id="dev-1", device_class="tv", geo=GEO,
        viewer_ref="vref", device_ref="dref",
    )  # fmt: skip
    bumped = replace(SUBSCRIBER, session_version=2)
    with pytest.raises(AccessRefused, match="session version") as caught:
        renewed_claims(TERMS, first, bumped, now=1_100.0, token_id="t2", geo=GEO)
    assert caught.value.reason == "session-version-stale"
    dropped = replace(SUBSCRIBER, packages=())
    with pytest.raises(AccessRefused) as caught:
        renewed_claims(TERMS, first, dropped, now=1_100.0, token_id="t2", geo=GEO)
    assert caught.value.reason == "not-entitled"
