"""Epoch pseudonyms: the HMAC-SHA256 they claim to be, apart per kind, key and epoch."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.bridge.epochs import EpochKey
from services.bridge.pseudonyms import EpochPseudonyms, reference_mac

_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=64)


@given(st.binary(min_size=1, max_size=100), _ids)
def test_pseudonyms_are_truncated_hmac_sha256_of_kind_and_id(key: bytes, subject: str) -> None:
    pseudonyms = EpochPseudonyms(EpochKey("e", key))

    assert pseudonyms.viewer(subject) == reference_mac(key, "viewer", subject)
    assert pseudonyms.session(subject) == reference_mac(key, "session", subject)
    assert len(pseudonyms.viewer(subject)) == 32


def test_the_same_id_differs_per_kind_and_per_epoch_key() -> None:
    today = EpochPseudonyms(EpochKey("2024-05-01", b"k" * 32))
    tomorrow = EpochPseudonyms(EpochKey("2024-05-02", b"j" * 32))

    assert today.viewer("x") != today.session("x")
    assert today.viewer("x") != tomorrow.viewer("x")
    assert today.viewer("x") == EpochPseudonyms(EpochKey("2024-05-01", b"k" * 32)).viewer("x")


def test_sample_event_ids_are_stable_version_8_uuids() -> None:
    pseudonyms = EpochPseudonyms(EpochKey("e", b"k" * 32))
    event_id = pseudonyms.sample_event_id("session", "s-1")

    assert uuid.UUID(event_id).version == 8
    assert uuid.UUID(event_id).variant == uuid.RFC_4122
    assert event_id == pseudonyms.sample_event_id("session", "s-1")
    assert event_id != pseudonyms.sample_event_id("session2", "s-1")
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert pseudonyms.sample_event_id("ab", "c") != pseudonyms.sample_event_id("a", "bc")


def test_the_key_does_not_show_in_a_repr() -> None:
    assert "kkkk" not in repr(EpochKey("e", b"k" * 32))
