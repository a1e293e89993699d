"""The JSON sample validator: every refusal names the field and a reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.bridge.errors import RequestRejected
from services.bridge.samples import (
    FIELDS,
    MAX_BITRATE_KBPS,
    MAX_THROUGHPUT_KBPS,
    Invalid,
    PlayerSample,
    SampleWindow,
    check_json_sample,
    explain_json_sample,
    parse_json_batch,
)
from tests.unit.services.bridge.conftest import NOW_MS, sample

WINDOW = SampleWindow.around(NOW_MS, max_age_s=3_600, max_skew_s=60)


def test_a_complete_sample_is_read_as_sent() -> None:
    read = check_json_sample(
        sample(serving_region="us-east", startup_ms=900, error="MEDIA_ERR_DECODE"), WINDOW
    )

    assert read == PlayerSample(
        "s-1", "viewer-123", "session-abc", "sports/final", "cdn-a", "us-east",
        NOW_MS - 1_000, 4_500, 12_000, 1_000, 1, 250, 900, False, "MEDIA_ERR_DECODE",
    )  # fmt: skip


def test_throughput_and_top_bitrate_are_optional_integers() -> None:
    read = check_json_sample(sample(throughput_kbps=25_400, top_bitrate_kbps=6_000), WINDOW)

    assert (read.throughput_kbps, read.top_bitrate_kbps, read.object_type) == (25_400, 6_000, None)
    with pytest.raises(Invalid, match="throughput_kbps"):
        check_json_sample(sample(throughput_kbps=-1), WINDOW)
    # Measured throughput is not a rendition: a player on a fast LAN (or loopback, where
    # a segment lands in a millisecond) measures gigabits, and that sample is kept.
    fast = check_json_sample(sample(throughput_kbps=1_600_000), WINDOW)
    assert fast.throughput_kbps == 1_600_000
    with pytest.raises(Invalid, match="throughput_kbps"):
        check_json_sample(sample(throughput_kbps=MAX_THROUGHPUT_KBPS + 1), WINDOW)


def test_counters_default_to_zero_and_options_to_none() -> None:
    minimal = {k: sample()[k] for k in ("viewer", "session", "content", "cdn", "sampled_at")}

    read = check_json_sample(minimal, WINDOW)

    assert (read.bitrate_kbps, read.play_ms, read.rebuffer_count) == (0, 0, 0)
    assert (read.sample_id, read.startup_ms, read.error_code, read.serving_region) == (
        None, None, None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"viewer": None}, "viewer", "missing-field"),
        ({"sampled_at": None}, "sampled_at", "missing-field"),
        ({"bufer_ms": 1}, "bufer_ms", "unknown-field"),
        ({"viewer": 42}, "viewer", "wrong-type"),
        ({"viewer": ""}, "viewer", "bad-length"),
        ({"viewer": "v" * 129}, "viewer", "bad-length"),
        ({"session": "a\nb"}, "session", "bad-characters"),
        ({"content": "\ud800"}, "content", "bad-characters"),
        ({"cdn": "cdn a"}, "cdn", "bad-characters"),
        ({"cdn": "https://x?token=1"}, "cdn", "bad-characters"),
        ({"error": "see http://x.example/?t=secret"}, "error", "bad-characters"),
        ({"serving_region": 7}, "serving_region", "wrong-type"),
        ({"bitrate_kbps": 4500.0}, "bitrate_kbps", "wrong-type"),
        ({"bitrate_kbps": True}, "bitrate_kbps", "wrong-type"),
        ({"bitrate_kbps": "4500"}, "bitrate_kbps", "wrong-type"),
        ({"bitrate_kbps": MAX_BITRATE_KBPS + 1}, "bitrate_kbps", "out-of-range"),
        ({"buffer_ms": -1}, "buffer_ms", "negative-value"),
        ({"rebuffer_ms": -250}, "rebuffer_ms", "negative-value"),
        ({"rebuffer_count": 2**40}, "rebuffer_count", "out-of-range"),
        ({"startup_ms": -5}, "startup_ms", "negative-value"),
        ({"sampled_at": "2024-05-01"}, "sampled_at", "wrong-type"),
        ({"sampled_at": NOW_MS + 61_000}, "sampled_at", "timestamp-in-future"),
        ({"sampled_at": NOW_MS - 3_601_000}, "sampled_at", "timestamp-too-old"),
        ({"sampled_at": -1}, "sampled_at", "timestamp-too-old"),
        ({"exited_before_start": "yes"}, "exited_before_start", "wrong-type"),
        ({"exited_before_start": True}, "exited_before_start", "inconsistent-sample"),
        ({"id": ""}, "id", "bad-length"),
        ({"id": 17}, "id", "wrong-type"),
    ],
)
def test_a_bad_field_is_named_with_a_reason(
    changes: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(Invalid) as refused:
        check_json_sample(sample(**changes), WINDOW)

    assert (refused.value.field, refused.value.reason) == (field, reason)


def test_a_viewer_who_left_before_start_is_consistent_without_play() -> None:
    read = check_json_sample(sample(exited_before_start=True, play_ms=0), WINDOW)

    assert read.exited_before_start


@pytest.mark.parametrize("item", [[], "sample", 7, None])
def test_an_item_that_is_not_an_object_is_refused(item: Any) -> None:
    with pytest.raises(Invalid) as refused:
        check_json_sample(item, WINDOW)

    assert refused.value.reason == "not-an-object"


def test_duplicate_ids_within_a_session_are_refused_after_the_first() -> None:
    body = orjson.dumps(
        {
            "samples": [
                sample(id="a"),
                sample(id="a", session="another-session"),
                sample(id="a", buffer_ms=1),
                sample(id="b"),
            ]
        }
    )

    batch = parse_json_batch(body, WINDOW, max_samples=10)

    assert [s.sample_id for s in batch.samples] == ["a", "a", "b"]
    assert [(r.item, r.reason) for r in batch.rejected] == [(2, "duplicate-sample-id")]


def test_rejections_come_in_request_order() -> None:
    body = orjson.dumps(
        {"samples": [sample(id="a"), sample(id="a"), sample(id="c", cdn=""), sample(id="d")]}
    )

    batch = parse_json_batch(body, WINDOW, max_samples=10)

    assert [r.item for r in batch.rejected] == [1, 2]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed-json"),
        (b"\xff", "malformed-json"),
        (b'{"samples": [}', "malformed-json"),
        (b"null", "malformed-batch"),
        (b'{"sample": []}', "malformed-batch"),
        (b'{"samples": []}', "empty-batch"),
    ],
)
def test_an_unusable_body_is_refused_as_a_whole(body: bytes, reason: str) -> None:
    with pytest.raises(RequestRejected) as refused:
        parse_json_batch(body, WINDOW, max_samples=10)

    assert refused.value.reason == reason
    assert refused.value.status == 400


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2 * MAX_BITRATE_KBPS),
    st.integers(NOW_MS - 3_700_000, NOW_MS + 120_000),
    st.floats(0, 10),
    st.sampled_from(["", "cdn-a", "cdn b", "x" * 129, "ok", "a\tb", "sports/final"]),
)


@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), _values, max_size=len(FIELDS)))
def test_the_fast_path_accepts_exactly_what_the_field_by_field_check_accepts(
    item: dict[str, Any],
) -> None:
    check_json_sample(sample(cdn="cdn-a"), WINDOW)  # the fast path knows this CDN
    try:
        expected: PlayerSample | str = explain_json_sample(item, WINDOW)
    except Invalid as problem:
        expected = problem.reason
    try:
        got: PlayerSample | str = check_json_sample(item, WINDOW)
    except Invalid as problem:
        got = problem.reason

    assert got == expected


@pytest.mark.parametrize(
    "value",
    ["10.1.2.3", "live/203.0.113.9/final", "cdn-2001:db8::1", "lo::1", "fe80:0:0:0:0:0:0:1"],
)
def test_names_holding_an_address_are_refused(value: str) -> None:
    for field in ("content", "cdn", "error"):
        with pytest.raises(Invalid) as refused:
            check_json_sample(sample(**{field: value}), WINDOW)

        assert (refused.value.field, refused.value.reason) == (field, "address-in-field")


@pytest.mark.parametrize(
    "value", ["match:2024:final", "sports/final", "v1.2.3", "ep-12:34", "a=b+c~d"]
)
def test_ordinary_names_pass(value: str) -> None:
    assert check_json_sample(sample(content=value), WINDOW).content == value


def test_an_email_in_a_name_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        check_json_sample(sample(content="alice@example.com"), WINDOW)

    assert refused.value.reason == "bad-characters"
