"""What the console's actions accept: bodies checked before anything is called."""

from __future__ import annotations

import pytest

from services.console.actions import (
    parse_body,
    region_of,
    rotation_of,
    token_request_of,
    viewer_of,
)
from services.console.errors import ActionRefused

REGIONS = ("eu-west", "us-east")


def refusal(call: object, *args: object) -> tuple[int, str]:
    with pytest.raises(ActionRefused) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.status, caught.value.reason


def test_bodies_must_be_json_objects_and_may_be_empty() -> None:
    assert parse_body(b"") == {}
    assert parse_body(b'{"region": "eu-west"}') == {"region": "eu-west"}
    assert refusal(parse_body, b"{nope") == (400, "malformed-json")
    assert refusal(parse_body, b'["eu-west"]') == (400, "malformed-request")


def test_a_region_action_names_a_configured_region() -> None:
    assert region_of({"region": "us-east"}, REGIONS) == "us-east"
    assert refusal(region_of, {}, REGIONS) == (400, "missing-region")
    assert refusal(region_of, {"region": 7}, REGIONS) == (400, "malformed-region")
    assert refusal(region_of, {"region": "mars-1"}, REGIONS) == (404, "unknown-region")
    assert refusal(region_of, {"region": "eu-west", "force": True}, REGIONS) == (
        400,
        "unknown-field",
    )


def test_revoking_defaults_to_the_console_viewer_and_checks_the_id() -> None:
    assert viewer_of({}, "console-viewer") == "console-viewer"
    assert viewer_of({"viewer_id": "alice@example"}, "console-viewer") == "alice@example"
    assert refusal(viewer_of, {"viewer_id": ""}, "v") == (400, "malformed-viewer-id")
    assert refusal(viewer_of, {"viewer_id": "a/../b"}, "v") == (400, "malformed-viewer-id")
    assert refusal(viewer_of, {"viewer_id": "x" * 129}, "v") == (400, "malformed-viewer-id")


def test_the_console_only_rotates_in_an_emergency() -> None:
    rotation_of({})
    rotation_of({"emergency": True})
    assert refusal(rotation_of, {"emergency": False}) == (400, "emergency-only")
    assert refusal(rotation_of, {"period": 3}) == (400, "unknown-field")


def test_token_requests_default_to_the_console_viewer_and_content() -> None:
    assert token_request_of({}, "v", "c") == ("v", "c", None)
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ2In0.c2ln"
    assert token_request_of({"viewer_id": "w", "content_id": "k", "renew": token}, "v", "c") == (
        "w",
        "k",
        token,
    )
    assert refusal(token_request_of, {"content_id": "../etc"}, "v", "c") == (
        400,
        "malformed-content-id",
    )
    assert refusal(token_request_of, {"renew": "not a token"}, "v", "c") == (400, "malformed-token")
    assert refusal(token_request_of, {"renew": "a.b." + "c" * 5000}, "v", "c") == (
        400,
        "malformed-token",
    )
