"""The steering API through a real ASGI client, over an in-memory steering source."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from liveward.settings import load_settings
from services.steering.app import create_steering_app
from services.steering.manifest import parse_request
from services.steering.source import InMemorySteeringSource
from streams.events import SteeringState

SETTINGS = load_settings()
ORDER = ["eu-west.cdn-a", "eu-west.cdn-b", "us-east.cdn-a", "us-east.cdn-b"]
US_FIRST = ["us-east.cdn-a", "us-east.cdn-b", "eu-west.cdn-a", "eu-west.cdn-b"]


def _state(content: str, priority: list[str], ttl: int = 2) -> SteeringState:
    return SteeringState(
        event_id="e",
        occurred_at=1,
        region="eu-west",
        content_id=content,
        pathway_priority=tuple(priority),
        version=7,
        ttl_seconds=ttl,
        decision_id="d",
    )


@pytest.fixture
def source() -> InMemorySteeringSource:
    source = InMemorySteeringSource()
    source.live = {"ch1", "ch2"}
    return source


@pytest.fixture
def client(source: InMemorySteeringSource) -> TestClient:
    return TestClient(create_steering_app(SETTINGS, source))


def test_without_any_decision_players_get_every_pathway_in_settings_order(
    client: TestClient,
) -> None:
    response = client.get("/v1/steering/ch1")
    assert response.status_code == 200
    body = response.json()
    assert body["VERSION"] == 1 and body["TTL"] == SETTINGS.media.steering_ttl_s
    assert body["PATHWAY-PRIORITY"] == ORDER
    assert "PATHWAY-CLONES" not in body  # the player has not said where it is
    assert response.headers["cache-control"] == "no-store"


def test_a_content_entry_wins_over_the_default_which_wins_over_settings(
    client: TestClient, source: InMemorySteeringSource
) -> None:
    source.entries["*"] = _state("*", US_FIRST, ttl=5)
    assert client.get("/v1/steering/ch1").json()["PATHWAY-PRIORITY"] == US_FIRST
    assert client.get("/v1/steering/ch1").json()["TTL"] == 5
    source.entries["ch2"] = _state("ch2", list(reversed(ORDER)))
    assert client.get("/v1/steering/ch2").json()["PATHWAY-PRIORITY"] == list(reversed(ORDER))
    # An entry that predates a pathway still lists it, last.
    source.entries["*"] = _state("*", ["us-east.cdn-a", "eu-west.cdn-a"])
    assert client.get("/v1/steering/ch1").json()["PATHWAY-PRIORITY"] == [
        "us-east.cdn-a", "eu-west.cdn-a", "eu-west.cdn-b", "us-east.cdn-b",
    ]  # fmt: skip


def test_the_reload_uri_keeps_one_session_across_reloads(client: TestClient) -> None:
    first = client.get("/v1/steering/ch1").json()["RELOAD-URI"]
    parts = urlsplit(first)
    assert parts.path == "/v1/steering/ch1"
    [session] = parse_qs(parts.query)["session"]
    # The player adds its own parameters to the reload URI; the session stays.
    again = client.get(f"{first}&_HLS_pathway=eu-west.cdn-a&_HLS_throughput=5000000").json()
    assert again["RELOAD-URI"] == first
    assert parse_qs(urlsplit(again["RELOAD-URI"]).query) == {"session": [session]}
    other = client.get("/v1/steering/ch1").json()["RELOAD-URI"]
    assert other != first


def test_a_player_on_a_known_pathway_is_offered_clones_of_it(client: TestClient) -> None:
    body = client.get("/v1/steering/ch1?_HLS_pathway=eu-west.cdn-a&_HLS_throughput=1").json()
    clones = body["PATHWAY-CLONES"]
    assert [c["ID"] for c in clones] == ORDER[1:]
    assert {c["BASE-ID"] for c in clones} == {"eu-west.cdn-a"}
    edge = {p: SETTINGS.media.edge_port_base + i for i, p in enumerate(ORDER)}
    assert clones[0]["URI-REPLACEMENT"] == {"HOST": f"127.0.0.1:{edge['eu-west.cdn-b']}"}
    # A pathway we do not know (say, a clone id of another service) is fine, but no base.
    body = client.get("/v1/steering/ch1?_HLS_pathway=elsewhere").json()
    assert "PATHWAY-CLONES" not in body


def test_dash_players_get_service_locations_from_the_same_state(
    client: TestClient, source: InMemorySteeringSource
) -> None:
    source.entries["ch1"] = _state("ch1", US_FIRST)
    response = client.get(
        '/v1/steering/ch1/dash?_DASH_pathway="eu-west.cdn-a","us-east.cdn-a"'
        "&_DASH_throughput=4000000,3500000"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["SERVICE-LOCATION-PRIORITY"] == US_FIRST
    assert urlsplit(body["RELOAD-URI"]).path == "/v1/steering/ch1/dash"
    assert "PATHWAY-PRIORITY" not in body


@pytest.mark.parametrize(
    ("url", "status", "reason"),
    [
        ("/v1/steering/nobody-streams-this", 404, "unknown-content"),
        ("/v1/steering/ch1?_HLS_pathway=eu%20west", 400, "malformed-pathway"),
        ("/v1/steering/ch1?_HLS_pathway=", 200, None),
        ("/v1/steering/ch1?_HLS_throughput=-5", 400, "malformed-throughput"),
        ("/v1/steering/ch1?_HLS_throughput=1e6", 400, "malformed-throughput"),
        ("/v1/steering/ch1?_HLS_throughput=99999999999999", 400, "malformed-throughput"),
        ("/v1/steering/ch1?session=short", 400, "malformed-session"),
        ("/v1/steering/ch1?_HLS_pathway=a&_HLS_pathway=b", 400, "malformed-query"),
        ("/v1/steering/.hidden", 400, "malformed-content"),
        ("/v1/steering/ch1/dash?_DASH_pathway=%22a%22,b%20c", 400, "malformed-pathway"),
        ("/v1/steering/ch1/dash?_DASH_throughput=1,x", 400, "malformed-throughput"),
    ],
)
def test_bad_requests_get_a_reason_and_cors_headers(
    client: TestClient, url: str, status: int, reason: str | None
) -> None:
    response = client.get(url, headers={"Origin": "https://player.example"})
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == "*"
    if reason is not None:
        assert response.json()["error"] == reason


def test_a_content_with_an_entry_is_served_even_when_no_packager_is_listed(
    client: TestClient, source: InMemorySteeringSource
) -> None:
    source.entries["ch9"] = _state("ch9", US_FIRST)
    assert client.get("/v1/steering/ch9").json()["PATHWAY-PRIORITY"] == US_FIRST


def test_metrics_count_players_by_pathway(client: TestClient) -> None:
    client.get("/v1/steering/ch1?_HLS_pathway=us-east.cdn-b&_HLS_throughput=2000000")
    text = client.get("/metrics").text
    counted = 'liveward_steering_requests_by_pathway_total{pathway="us-east.cdn-b",protocol="hls"}'
    assert f"{counted} 1.0" in text


def test_a_dash_player_is_on_the_last_location_it_lists() -> None:
    parsed = parse_request("ch1", [("_DASH_pathway", '"a","b"')], dash=True)
    assert parsed.pathways == ("a", "b") and parsed.current_pathway == "b"
