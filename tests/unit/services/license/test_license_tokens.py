"""Token verification at the license service: JWKS refresh, unknown kids, the verified cache."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auth.errors import TokenRejected
from services.auth.tokens import sign_token
from services.license.errors import LicenseError, Refusal
from services.license.tokens import PlaybackTokens
from tests.unit.services.license.conftest import AUDIENCE, ISSUER, LicenseWorld, jwk


def test_a_verified_token_is_not_verified_again_until_it_expires(world: LicenseWorld) -> None:
    token = world.token()
    now = world.clock.now
    first = world.tokens.verify(token, now=now)
    assert world.tokens.verify(token, now=now + 100) == first
    assert world.tokens.cache_hits == 1
    with pytest.raises(TokenRejected) as expired:
        world.tokens.verify(token, now=first.expires_at + 31)
    assert expired.value.reason == "token-expired"


def test_a_tampered_copy_of_a_cached_token_is_checked_on_its_own(world: LicenseWorld) -> None:
    token = world.token()
    world.tokens.verify(token, now=world.clock.now)
    body, _, signature = token.rpartition(".")
    with pytest.raises(TokenRejected) as forged:
        world.tokens.verify(f"{body}.{signature[:-4]}AAAA", now=world.clock.now)
    assert forged.value.reason == "signature-invalid"


def test_an_unknown_kid_fetches_the_jwks_again_at_most_once_a_second(
    world: LicenseWorld,
) -> None:
    newcomer = Ed25519PrivateKey.generate()
    token = sign_token(world.claims(), "kid-2", newcomer)
    fetched = world.jwks.fetches
    with pytest.raises(TokenRejected) as unknown:
        world.tokens.verify(token, now=world.clock.now)
    assert unknown.value.reason == "kid-unknown"
    assert world.jwks.fetches == fetched  # the last fetch was under a second ago

    world.clock.now += 1.5
    world.jwks.document["keys"].append(jwk("kid-2", newcomer))
    assert world.tokens.verify(token, now=world.clock.now).content_id == "sports/final"
    assert world.jwks.fetches == fetched + 1

    with pytest.raises(TokenRejected):
        world.tokens.verify(sign_token(world.claims(), "forged", newcomer), now=world.clock.now)
    assert world.jwks.fetches == fetched + 1


def test_a_key_withdrawn_from_the_jwks_is_retired_and_its_tokens_verify_again(
    world: LicenseWorld,
) -> None:
    token = world.token()
    world.tokens.verify(token, now=world.clock.now)
    replacement = Ed25519PrivateKey.generate()
    world.jwks.document["keys"] = [jwk("kid-2", replacement)]
    assert world.tokens.refresh()
    with pytest.raises(TokenRejected) as retired:
        world.tokens.verify(token, now=world.clock.now)
    assert retired.value.reason == "kid-retired"


def test_no_verification_before_the_first_jwks() -> None:
    class Down:
        def fetch(self) -> dict[str, object]:
            raise LicenseError(Refusal.UNAVAILABLE, "jwks-unavailable")

    tokens = PlaybackTokens(Down(), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(LicenseError):
        tokens.refresh()
    assert not tokens.ready()
    with pytest.raises(LicenseError) as refused:
        tokens.verify("a.b.c", now=0)
    assert refused.value.reason == "not-ready"
