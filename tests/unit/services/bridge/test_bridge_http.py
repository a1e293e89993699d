"""POST /v1/telemetry through the real app: answers, reason codes, privacy, refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient

from streams.errors import DeliveryFailed, ProducerBackpressure
from tests.unit.services.bridge.conftest import (
    MAX_BODY,
    NOW_MS,
    PROXY_IP,
    SE_IP,
    Harness,
    sample,
)

URL = "/v1/telemetry"
ORIGIN = {"Origin": "https://player.example"}
CMCD = (
    'br=3200,bs,cid="live/final",d=4004,mtp=25400,ot=v,rtp=15000,'
    'sid="6e2fb550-c457-11e9-bb97-0800200c9a66",tb=6000'
)


def post(h: Harness, *samples: dict[str, Any], **kwargs: Any) -> Any:
    return h.client.post(URL, content=orjson.dumps({"samples": list(samples)}), **kwargs)


def test_a_batch_is_accepted_once_every_sample_is_in_the_log(harness: Harness) -> None:
    response = post(harness, sample(id="a"), sample(id="b", session="other"), headers=ORIGIN)

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "rejected": []}
    assert response.headers["access-control-allow-origin"] == "*"
    assert {topic for topic, _, _ in harness.log.records} == {"qoe.telemetry"}
    first, second = harness.decoded()
    assert first["country"] == "SE" and first["subdivision"] == "E"
    assert first["region"] == first["serving_region"] == "eu-west"
    assert first["pseudonym_epoch"] == "2024-05-01"
    assert first["occurred_at"] == NOW_MS
    assert first["sampled_at"] == NOW_MS - 1_000
    assert (first["bitrate_kbps"], first["buffer_ms"], first["rebuffer_ms"]) == (4500, 12000, 250)
    assert first["viewer_pseudonym"] == second["viewer_pseudonym"]
    assert first["session_ref"] != second["session_ref"]
    # Each record is keyed by its first sample's session (the partition they all hash to).
    keys = {key for _, key, _ in harness.log.records}
    assert first["session_ref"].encode() in keys
    assert keys <= {first["session_ref"].encode(), second["session_ref"].encode()}


def test_raw_viewer_session_and_address_never_reach_the_log(harness: Harness) -> None:
    post(harness, sample(viewer="alice@example.com", session="sess-secret-42"))

    (_, key, value) = harness.log.records[0]
    for raw in (b"alice@example.com", b"sess-secret-42", SE_IP.encode(), b"89.160.20"):
        assert raw not in (key or b"") + (value or b"")


def test_good_samples_of_a_mixed_batch_are_accepted_and_the_bad_ones_listed(
    harness: Harness,
) -> None:
    response = post(
        harness,
        sample(id="ok-1"),
        sample(id="bad", buffer_ms=-5),
        sample(id="ok-2", sampled_at=NOW_MS + 3_600_000),
        sample(id="ok-3"),
    )

    assert response.status_code == 202
    assert response.json() == {
        "accepted": 2,
        "rejected": [
            {
                "index": 1,
                "reason": "negative-value",
                "id": "bad",
                "field": "buffer_ms",
                "message": "buffer_ms must not be negative",
            },
            {
                "index": 2,
                "reason": "timestamp-in-future",
                "id": "ok-2",
                "field": "sampled_at",
                "message": "sampled_at is ahead of the bridge's clock",
            },
        ],
    }
    pseudonyms = harness.bridge.pseudonyms(NOW_MS)
    assert [s["event_id"] for s in harness.decoded()] == [
        pseudonyms.sample_event_id("session-abc", i) for i in ("ok-1", "ok-3")
    ]


def test_a_batch_without_one_good_sample_is_a_400_listing_every_item(harness: Harness) -> None:
    response = post(harness, sample(bitrate_kbps="4500"), sample(id="s-2", viewer=None))

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid-samples"
    assert body["accepted"] == 0
    assert [(r["index"], r["field"], r["reason"]) for r in body["rejected"]] == [
        (0, "bitrate_kbps", "wrong-type"),
        (1, "viewer", "missing-field"),
    ]
    assert harness.log.records == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "malformed-json"),
        (b"[1, 2]", "application/json", 400, "malformed-batch"),
        (b'{"samples": {}}', "application/json", 400, "malformed-batch"),
        (b'{"samples": [], "extra": 1}', "application/json", 400, "malformed-batch"),
        (b'{"samples": []}', "application/json", 400, "empty-batch"),
        (b"", "application/json", 400, "empty-request"),
        (b"<samples/>", "application/xml", 415, "unsupported-media-type"),
        (b"\xff\xfe", "text/cmcd", 400, "malformed-cmcd"),
    ],
)
def test_unusable_bodies_get_a_reason(
    harness: Harness, body: bytes, content_type: str, status: int, reason: str
) -> None:
    response = harness.client.post(
        URL, content=body, headers={"Content-Type": content_type, **ORIGIN}
    )

    assert response.status_code == status
    assert response.json()["error"] == reason
    assert response.headers["access-control-allow-origin"] == "*"


def test_too_many_samples_is_a_413(make_bridge: Callable[..., Harness]) -> None:
    h = make_bridge(max_samples=3)
    response = post(h, *(sample(id=str(n)) for n in range(4)))

    assert response.status_code == 413
    assert response.json()["error"] == "too-many-samples"


def test_oversized_bodies_are_refused_with_or_without_a_length(harness: Harness) -> None:
    big = b"x" * (MAX_BODY + 1)
    declared = harness.client.post(URL, content=big)

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1000 + 2):
            yield b"y" * 1000

    chunked = harness.client.post(URL, content=chunks())

    assert (declared.status_code, declared.json()["error"]) == (413, "body-too-large")
    assert (chunked.status_code, chunked.json()["error"]) == (413, "body-too-large")


def test_cmcd_in_the_query_string_is_one_sample(harness: Harness) -> None:
    response = harness.client.post(f"{URL}?CMCD={quote(CMCD)}")

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "rejected": [], "ignored_keys": []}
    (record,) = harness.decoded()
    assert record["content_id"] == "live/final"
    assert (record["bitrate_kbps"], record["play_ms"], record["rebuffer_count"]) == (3200, 4004, 1)
    assert record["sampled_at"] == NOW_MS
    assert record["cdn"] == "unknown"


def test_cmcd_headers_are_merged_and_unknown_keys_reported(harness: Harness) -> None:
    response = harness.client.post(
        URL,
        headers={
            "CMCD-Object": "br=800,d=2000,ot=av",
            "CMCD-Request": "bl=21300,com.example-foo=7",
            "CMCD-Session": 'cid="news",sid="s-1",com.liveward-viewer="v-9"',
            "CMCD-Status": "rtp=1500",
        },
    )

    assert response.status_code == 202, response.text
    assert response.json()["ignored_keys"] == ["com.example-foo"]
    (record,) = harness.decoded()
    assert (record["bitrate_kbps"], record["buffer_ms"], record["content_id"]) == (
        800,
        21300,
        "news",
    )


@pytest.mark.parametrize(
    ("cmcd", "reason", "field"),
    [
        ('br="3200",sid="s"', "wrong-type", "br"),
        ('bl=-100,sid="s"', "negative-value", "bl"),
        ('ot=x,sid="s"', "bad-value", "ot"),
        ("br=3200", "missing-field", "sid"),
        ('sid="s",ts=99', "timestamp-too-old", "ts"),
        ('sid="s",v=9', "unsupported-version", "v"),
    ],
)
def test_cmcd_with_a_bad_value_is_refused_with_the_key(
    harness: Harness, cmcd: str, reason: str, field: str
) -> None:
    response = harness.client.post(URL, params={"CMCD": cmcd})

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid-samples"
    assert [(r["field"], r["reason"]) for r in body["rejected"]] == [(field, reason)]


@pytest.mark.parametrize(
    "cmcd", ['sid="unterminated', "BR=1", "br=1,,bl=2", "br=1;x=2", 'br=1,br=2,sid="s"', "br=1,"]
)
def test_cmcd_that_does_not_parse_is_malformed(harness: Harness, cmcd: str) -> None:
    response = harness.client.post(URL, params={"CMCD": cmcd})

    assert response.status_code == 400
    assert response.json()["error"] == "malformed-cmcd"


def test_a_key_repeated_across_cmcd_headers_is_malformed(harness: Harness) -> None:
    response = harness.client.post(
        URL, headers={"CMCD-Session": 'sid="a"', "CMCD-Request": 'sid="b"'}
    )

    assert response.json()["error"] == "malformed-cmcd"


def test_body_and_cmcd_together_are_ambiguous(harness: Harness) -> None:
    response = post(harness, sample(), params={"CMCD": 'sid="s"'})

    assert (response.status_code, response.json()["error"]) == (400, "ambiguous-request")


def test_text_cmcd_lines_are_a_batch(harness: Harness) -> None:
    lines = "\n".join(
        ['br=800,sid="a",sn=1', 'br=900,sid="a",sn=2', "garbage here", 'br=1,sid="a",sn=1']
    )
    response = harness.client.post(URL, content=lines, headers={"Content-Type": "text/cmcd"})

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (2, "malformed-cmcd"),
        (3, "duplicate-sample-id"),
    ]


def test_a_flooding_client_gets_429_with_retry_after_and_others_do_not(
    make_bridge: Callable[..., Harness],
) -> None:
    h = make_bridge(rate_limit_samples_per_s=10, rate_limit_burst=30, rate_limit_request_cost=5)
    answers = [post(h, sample(id=str(n)), headers=ORIGIN).status_code for n in range(6)]
    refused = post(h, sample(id="x"), headers=ORIGIN)

    assert answers == [202] * 5 + [429]
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate-limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["access-control-allow-origin"] == "*"
    # A forged X-Forwarded-For does not buy a fresh bucket: the peer is no trusted proxy.
    forged = post(h, sample(id="y"), headers={"X-Forwarded-For": "216.160.83.56"})
    assert forged.status_code == 429
    with TestClient(h.client.app, client=("216.160.83.56", 40_000)) as other:
        assert other.post(URL, json={"samples": [sample(id="o")]}).status_code == 202
    h.clock.advance(2.0)
    assert post(h, sample(id="z")).status_code == 202


def test_forwarded_for_counts_only_from_a_trusted_proxy(
    make_bridge: Callable[..., Harness],
) -> None:
    behind_proxy = make_bridge(client_ip=PROXY_IP)
    post(behind_proxy, sample(), headers={"X-Forwarded-For": "203.0.113.9, 216.160.83.56"})
    direct = make_bridge()
    post(direct, sample(), headers={"X-Forwarded-For": "216.160.83.56"})

    assert behind_proxy.decoded()[0]["country"] == "US"
    assert behind_proxy.decoded()[0]["subdivision"] == "WA"
    assert direct.decoded()[0]["country"] == "SE"


def test_an_unknown_address_has_unknown_geo(make_bridge: Callable[..., Harness]) -> None:
    h = make_bridge(client_ip="192.0.2.1")
    post(h, sample())

    assert (h.decoded()[0]["country"], h.decoded()[0]["subdivision"]) == ("--", "")


@pytest.mark.parametrize(
    ("failure", "reason", "retry_after"),
    [
        (ProducerBackpressure("queue full", retry_after=2.0), "backpressure", "2"),
        (DeliveryFailed("broker down"), "delivery-failed", "1"),
    ],
)
def test_kafka_trouble_is_a_503_with_retry_after(
    harness: Harness, failure: Exception, reason: str, retry_after: str
) -> None:
    harness.log.refuse_with = failure
    response = post(harness, sample(), headers=ORIGIN)

    assert response.status_code == 503
    assert response.json()["error"] == reason
    assert response.headers["retry-after"] == retry_after
    assert response.headers["access-control-allow-origin"] == "*"
    harness.log.refuse_with = None
    assert post(harness, sample()).status_code == 202


def test_a_resent_sample_keeps_its_event_id(harness: Harness) -> None:
    post(harness, sample(id="s-7"))
    post(harness, sample(id="s-7"))
    post(harness, sample(id=None))
    post(harness, sample(id=None))

    ids = [r["event_id"] for r in harness.decoded()]
    assert ids[0] == ids[1]
    assert len({ids[1], ids[2], ids[3]}) == 3


def test_pseudonyms_change_with_the_epoch_and_after_its_key_is_destroyed(
    harness: Harness,
) -> None:
    post(harness, sample())
    harness.clock.advance(86_400)
    post(harness, sample(sampled_at=harness.clock.wall_ms))
    assert harness.keys.destroy("2024-05-02", harness.clock.wall_ms)
    post(harness, sample(sampled_at=harness.clock.wall_ms))

    records = harness.decoded()
    assert [r["pseudonym_epoch"] for r in records] == ["2024-05-01", "2024-05-02", "2024-05-02~2"]
    assert len({r["viewer_pseudonym"] for r in records}) == 3


def test_preflight_allows_the_cmcd_headers(harness: Harness) -> None:
    response = harness.client.options(
        URL,
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "cmcd-session,cmcd-request,content-type",
        },
    )

    assert response.status_code == 200
    assert "cmcd-session" in response.headers["access-control-allow-headers"].lower()


def test_metrics_count_outcomes(harness: Harness) -> None:
    post(harness, sample(id="a"), sample(id="b", buffer_ms=-1))
    post(harness, sample(bitrate_kbps=None, buffer_ms="x"))
    text = harness.client.get("/metrics").text

    assert 'liveward_bridge_samples_total{outcome="accepted"} 1.0' in text
    assert 'liveward_bridge_samples_total{outcome="negative-value"} 1.0' in text
    assert 'liveward_bridge_samples_total{outcome="wrong-type"} 1.0' in text
    assert 'liveward_bridge_refusals_total{reason="invalid-samples"} 1.0' in text


def test_other_methods_are_refused_with_allow(harness: Harness) -> None:
    response = harness.client.get(URL, headers=ORIGIN)

    assert response.status_code == 405
    assert response.json()["error"] == "method-not-allowed"
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.headers["access-control-allow-origin"] == "*"


def test_health_and_unknown_routes_are_the_edges(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"service": "bridge", "ready": True}
    assert harness.client.post("/v1/elsewhere").json()["error"] == "not-found"
