"""Key rotation with overlap: the schedule given a clock, the JWKS, the shared keyring file."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path

import pytest

from services.auth.errors import KeyringError
from services.auth.signing_keys import (
    RETIRED_KIDS_KEPT_S,
    InMemoryKeyringStore,
    Keyring,
    KeyringFile,
    RotationSchedule,
    SigningKey,
    SigningKeys,
    b64url_decode,
    jwks_document,
    key_id,
    keyring_from_json,
    keyring_to_json,
    public_keys,
    rotate,
)

SCHEDULE = RotationSchedule(rotation_s=600, token_lifetime_s=300, clock_skew_s=30)
T0 = 1_800_000_000


def new_key(not_before: int) -> SigningKey:
    return SigningKey.generate(not_before=not_before, schedule=SCHEDULE)


def test_a_fresh_keyring_gets_a_signing_key_and_the_next_one_published() -> None:
    ring = rotate(Keyring(), T0, new_key)
    active = ring.signing_key(T0)
    assert active is not None
    assert (active.not_before, active.signs_until) == (T0, T0 + 600)
    assert active.verifies_until == T0 + 600 + 300 + 30
    assert [k.not_before for k in ring.keys] == [T0, T0 + 600]
    published = [jwk["kid"] for jwk in jwks_document(ring, T0)["keys"]]
    assert published == [k.kid for k in ring.keys]


def test_rotation_is_a_no_op_until_the_schedule_says_otherwise() -> None:
    ring = rotate(Keyring(), T0, new_key)
    assert rotate(ring, T0 + 599, new_key) is ring
    assert ring.next_change_at() == T0 + 600


def test_keys_hand_over_then_the_old_one_verifies_one_lifetime_more_then_retires() -> None:
    ring = rotate(Keyring(), T0, new_key)
    first, second = ring.keys
    ring = rotate(ring, T0 + 600, new_key)
    assert ring.signing_key(T0 + 600) == second
    assert first in ring.verification_keys(T0 + 600)
    assert len(ring.keys) == 3, "the key after the second is published already"

    # One lifetime plus the skew after it stopped signing, the first key retires.
    ring = rotate(ring, first.verifies_until, new_key)
    assert first.kid not in {k.kid for k in ring.keys}
    assert first.kid in ring.retired_kids()
    assert first.kid not in {j["kid"] for j in jwks_document(ring, first.verifies_until)["keys"]}


def test_after_a_long_pause_a_fresh_chain_starts_and_old_kids_are_remembered_for_a_while() -> None:
    ring = rotate(Keyring(), T0, new_key)
    later = T0 + 86_400
    old_kids = {k.kid for k in ring.keys}
    ring = rotate(ring, later, new_key)
    assert ring.signing_key(later) is not None
    assert old_kids <= ring.retired_kids()
    ring = rotate(ring, later + RETIRED_KIDS_KEPT_S + 1, new_key)
    assert not old_kids & ring.retired_kids()


def test_a_keyring_round_trips_through_json_and_a_tampered_one_is_refused() -> None:
    ring = rotate(rotate(Keyring(), T0, new_key), T0 + 2_000, new_key)
    assert keyring_from_json(keyring_to_json(ring)) == ring
    document = json.loads(keyring_to_json(ring))
    document["keys"][0]["kid"] = "someone-elses"
    with pytest.raises(KeyringError, match="does not match"):
        keyring_from_json(json.dumps(document))
    with pytest.raises(KeyringError):
        keyring_from_json("{not json")


def test_the_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 8037 appendix A.3: the thumbprint of its example Ed25519 public key.
    public = b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    assert key_id(public) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_the_jwks_publishes_okp_ed25519_keys_a_verifier_can_read_back() -> None:
    ring = rotate(Keyring(), T0, new_key)
    document = jwks_document(ring, T0)
    for jwk in document["keys"]:
        fields = (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"])
        assert fields == ("OKP", "Ed25519", "sig", "EdDSA")
        assert "d" not in jwk
    assert public_keys(document) == {k.kid: k.public_key for k in ring.keys}
    noisy = {"keys": [*document["keys"], {"kty": "RSA", "kid": "r"}, "junk", {"kty": "OKP"}]}
    assert set(public_keys(noisy)) == {k.kid for k in ring.keys}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_signing_keys_rotate_as_the_clock_moves() -> None:
    clock = Clock(T0)
    keys = SigningKeys(InMemoryKeyringStore(), SCHEDULE, clock=clock)
    first, _ = keys.signing_key()
    clock.now = T0 + 601
    second, _ = keys.signing_key()
    assert second.kid != first.kid
    assert first.kid in {j["kid"] for j in keys.jwks()["keys"]}
    clock.now = first.verifies_until
    assert first.kid in keys.retired_kids()


def test_two_services_sharing_a_keyring_file_sign_with_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "signing-keys.json"
    clock = Clock(T0)
    one = SigningKeys(KeyringFile(path), SCHEDULE, clock=clock)
    two = SigningKeys(KeyringFile(path), SCHEDULE, clock=clock)
    assert one.signing_key()[0] == two.signing_key()[0]
    clock.now = T0 + 600
    assert one.signing_key()[0] == two.signing_key()[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the file holds private keys"


def _rotate_in_a_child(path: str, now: int) -> None:
    SigningKeys(KeyringFile(Path(path)), SCHEDULE, clock=lambda: now).signing_key()


def test_processes_rotating_at_once_create_each_key_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_rotate_in_a_child, args=(str(path), T0)) for _ in range(6)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    ring = KeyringFile(path).load()
    assert [k.not_before for k in ring.keys] == [T0, T0 + 600]


def test_a_keyring_file_that_is_not_a_keyring_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    path.write_text('{"format": 99}')
    with pytest.raises(KeyringError, match="format"):
        KeyringFile(path).load()
