"""The EME ClearKey exchange and the key window, as pure functions."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.keys.keystore import ContentKey
from services.license.clearkey import (
    MAX_KIDS,
    b64url,
    b64url_decode,
    license_response,
    parse_license_request,
)
from services.license.errors import LicenseError, Refusal
from services.license.window import clearkey_periods, key_window


@given(st.binary(max_size=64))
def test_base64url_round_trips_without_padding(raw: bytes) -> None:
    text = b64url(raw)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == raw
    assert b64url_decode(text + "=" * (-len(text) % 4)) == raw


def test_a_cdm_request_parses_to_key_ids_in_order_without_duplicates() -> None:
    a, b = bytes(range(16)), bytes(range(16, 32))
    body = orjson.dumps({"kids": [b64url(b), b64url(a), b64url(b)], "type": "temporary"})
    assert parse_license_request(body).kids == (b, a)
    # Some CDMs omit the type; a temporary session is what they get.
    assert parse_license_request(orjson.dumps({"kids": [b64url(a)]})).kids == (a,)


def test_too_many_key_ids_are_a_bad_request() -> None:
    kids = [b64url(bytes([i]) * 16) for i in range(MAX_KIDS + 1)]
    with pytest.raises(LicenseError) as refused:
        parse_license_request(orjson.dumps({"kids": kids}))
    assert (refused.value.refusal, refused.value.reason) == (Refusal.BAD_REQUEST, "too-many-kids")


def test_the_answer_is_the_jwk_set_a_clearkey_cdm_takes() -> None:
    key = ContentKey("c", 7, "00" * 15 + "ff", bytes(range(16)), "e", 0, 60_000)
    answer = orjson.loads(license_response([key]))
    assert answer == {
        "keys": [{"kty": "oct", "kid": "AAAAAAAAAAAAAAAAAAAA_w", "k": "AAECAwQFBgcICQoLDA0ODw"}],
        "type": "temporary",
    }
    assert "key" not in repr(key).replace("key_id", "")


def test_the_window_holds_current_and_next_and_late_periods_only_when_named() -> None:
    window = key_window(current=100, late=98)
    assert [window.allows(p) for p in (97, 98, 100, 101, 102)] == [False, True, True, True, False]
    assert clearkey_periods(window, ()) == (100, 101)
    assert clearkey_periods(window, (98, 101)) == (98, 100, 101)
    assert key_window(current=5, late=5).periods() == range(5, 7)
