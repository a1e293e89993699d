"""Content keys and key ids: the known answer for other implementations, and their properties."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from services.keys.derivation import (
    CONTENT_KEY_LABEL,
    KEY_ID_LABEL,
    SALT,
    EpochSecret,
    content_key,
    derivation_info,
    hkdf_expand,
    hkdf_extract,
    key_id,
    parse_key_id,
)
from services.keys.errors import KeyHierarchyError

# The known answer, quoted in the README: master 00 01 02 .. 1f, epoch "epoch-kat",
# content "channel-1", period 14400000 (2024-10-04T00:00:00Z with 120-s periods).
KAT_MASTER = bytes(range(32))
KAT_EPOCH = "epoch-kat"
KAT_CONTENT = "channel-1"
KAT_PERIOD = 14_400_000
KAT_INFO = (
    "6c6976657761726420636f6e74656e74206b65792076310000096570"
    "6f63682d6b617400096368616e6e656c2d310000000000dbba00"
)
KAT_CONTENT_KEY = "3af4b3ac1a430982efc7b5890f97ec50"
KAT_KEY_ID = "14b7d156951556b8ff45f2443ba44d69"


def test_known_answer_for_the_content_key_and_key_id() -> None:
    info = derivation_info(CONTENT_KEY_LABEL, KAT_EPOCH, KAT_CONTENT, KAT_PERIOD)
    assert info.hex() == KAT_INFO
    assert content_key(KAT_MASTER, KAT_EPOCH, KAT_CONTENT, KAT_PERIOD).hex() == KAT_CONTENT_KEY
    assert key_id(KAT_MASTER, KAT_EPOCH, KAT_CONTENT, KAT_PERIOD).hex() == KAT_KEY_ID


def test_rfc5869_test_case_1() -> None:
    ikm = bytes.fromhex("0b" * 22)
    prk = hkdf_extract(bytes.fromhex("000102030405060708090a0b0c"), ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = hkdf_expand(prk, bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


@settings(max_examples=200, deadline=None)
@given(
    master=st.binary(min_size=32, max_size=32),
    epoch=st.text(min_size=1, max_size=40),
    content=st.text(min_size=1, max_size=40),
    period=st.integers(0, 2**63 - 1),
)
def test_derivation_is_hkdf_sha256_as_specified(
    master: bytes, epoch: str, content: str, period: int
) -> None:
    for label, derive in ((CONTENT_KEY_LABEL, content_key), (KEY_ID_LABEL, key_id)):
        info = derivation_info(label, epoch, content, period)
        reference = HKDF(hashes.SHA256(), 16, SALT, info).derive(master)
        assert derive(master, epoch, content, period) == reference


def test_a_key_id_is_unrelated_to_its_key() -> None:
    secret = EpochSecret.from_master("e1", KAT_MASTER)
    key = secret.content_key("c", 7)
    kid = secret.key_id("c", 7)
    assert key != kid
    assert key not in kid and kid not in key
    # No byte-wise relation a reader could exploit: about half the bits differ.
    differing = bin(int.from_bytes(key, "big") ^ int.from_bytes(kid, "big")).count("1")
    assert 32 <= differing <= 96


@settings(max_examples=20, deadline=None)
@given(master=st.binary(min_size=32, max_size=32), start=st.integers(0, 2**40))
def test_key_ids_never_collide_across_periods_contents_and_epochs(
    master: bytes, start: int
) -> None:
    seen: set[bytes] = set()
    keys: set[bytes] = set()
    for epoch in ("e1", "e2"):
        secret = EpochSecret.from_master(epoch, master)
        for content in ("a", "b", "a|1"):
            for period in range(start, start + 200):
                seen.add(secret.key_id(content, period))
                keys.add(secret.content_key(content, period))
    assert len(seen) == 2 * 3 * 200
    assert len(keys) == 2 * 3 * 200
    assert not seen & keys


def test_ids_are_stable_and_bound_to_every_input() -> None:
    secret = EpochSecret.from_master("e1", KAT_MASTER)
    base = secret.key_id("c", 1)
    assert EpochSecret.from_master("e1", KAT_MASTER).key_id("c", 1) == base
    assert secret.key_id("c", 2) != base
    assert secret.key_id("d", 1) != base
    assert EpochSecret.from_master("e2", KAT_MASTER).key_id("c", 1) != base
    assert EpochSecret.from_master("e1", bytes(32)).key_id("c", 1) != base


def test_the_encoding_is_injective_where_separators_would_not_be() -> None:
    # "a" + "bc" and "ab" + "c" must not meet.
    assert derivation_info(KEY_ID_LABEL, "a", "bc", 1) != derivation_info(
        KEY_ID_LABEL, "ab", "c", 1
    )


def test_the_secret_never_shows_in_its_repr() -> None:
    secret = EpochSecret.from_master("e1", KAT_MASTER)
    assert secret.prk.hex() not in repr(secret)
    assert "prk" not in repr(secret)


@pytest.mark.parametrize(
    ("master", "epoch", "content", "period", "reason"),
    [
        (bytes(31), "e", "c", 0, "bad-master-key"),
        (bytes(32), "", "c", 0, "bad-epoch-id"),
        (bytes(32), "e", "", 0, "bad-content-id"),
        (bytes(32), "e", "x" * 1025, 0, "bad-content-id"),
        (bytes(32), "e", "c", -1, "bad-period"),
        (bytes(32), "e", "c", 2**63, "bad-period"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(
    master: bytes, epoch: str, content: str, period: int, reason: str
) -> None:
    with pytest.raises(KeyHierarchyError) as caught:
        content_key(master, epoch, content, period)
    assert caught.value.reason == reason


def test_key_ids_parse_from_hex_only() -> None:
    assert parse_key_id(KAT_KEY_ID).hex() == KAT_KEY_ID
    for bad in ("zz" * 16, "00" * 15, ""):
        with pytest.raises(KeyHierarchyError) as caught:
            parse_key_id(bad)
        assert caught.value.reason == "bad-key-id"
