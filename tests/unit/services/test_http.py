"""The conventions every edge shares, through a real ASGI client."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.http import EdgeError, create_edge_app


def _client(ready: bool = True) -> TestClient:
    app = create_edge_app("test", max_body_bytes=100, ready=lambda: ready)

    @app.post("/v1/thing")
    async def thing(body: dict[str, int]) -> dict[str, int]:
        if body.get("n") == 0:
            raise EdgeError(403, "not-entitled", "nope", retry_after=2.4)
        return body

    return TestClient(app)


def test_refusals_carry_cors_headers_and_a_reason() -> None:
    response = _client().post("/v1/thing", json={"n": 0}, headers={"Origin": "https://p.example"})
    assert response.status_code == 403
    assert response.json()["error"] == "not-entitled"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["retry-after"] == "2"


def test_preflight_allows_authorization() -> None:
    response = _client().options(
        "/v1/thing",
        headers={
            "Origin": "https://p.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_oversized_bodies_get_413_with_cors() -> None:
    response = _client().post(
        "/v1/thing", content=b"{" + b" " * 200 + b"}", headers={"Origin": "https://p.example"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "body-too-large"
    assert response.headers["access-control-allow-origin"] == "*"


def test_malformed_json_is_400_with_a_reason() -> None:
    response = _client().post(
        "/v1/thing", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed-request"


def test_unknown_route_is_404_json() -> None:
    response = _client().get("/nope")
    assert (response.status_code, response.json()["error"]) == (404, "not-found")


def test_healthz_follows_readiness_and_metrics_count_requests() -> None:
    assert _client(ready=False).get("/healthz").status_code == 503
    client = _client()
    client.post("/v1/thing", json={"n": 1})
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert (
        'liveward_http_requests_total{route="/v1/thing",service="test",status="200"} 1.0' in metrics
    )
