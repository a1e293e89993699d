"""The steering service's HTTP API: HLS and DASH steering manifests per content.

- `GET /v1/steering/{content}[?session=…&_HLS_pathway=…&_HLS_throughput=…]`: the HLS
  steering manifest.
- `GET /v1/steering/{content}/dash[?session=…&_DASH_pathway=…&_DASH_throughput=…]`: the
  DASH-IF one.

The pathway priority is the control plane's entry for the content, else its '*' default,
else every pathway in settings order; pathways the entry does not know (a region added
since) go last. The RELOAD-URI keeps a `session` query (made on the first request) so a
player's reloads can be told apart. 400 for a malformed content id, pathway, throughput,
session or a repeated parameter; 404 `unknown-content` for a stream nobody publishes.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram

from liveward.settings import Settings
from liveward.topology import pathways
from processors.control import DEFAULT_CONTENT
from services.http import EdgeError, create_edge_app, json_response
from services.steering.errors import MalformedRequest, UnknownContent
from services.steering.manifest import (
    SESSION_PARAM,
    SteeringRequest,
    dash_manifest,
    hls_manifest,
    parse_request,
)
from services.steering.source import SteeringSource

# Players must see a new priority at their next reload, never a cached one.
NO_STORE = {"Cache-Control": "no-store"}


class SteeringMetrics:
    """Where players are, what they measure, and how fast decisions become servable."""

    def __init__(self, app: FastAPI) -> None:
        registry = app.state.metrics.registry
        self.players = Counter(
            "liveward_steering_requests_by_pathway",
            "Steering requests by the pathway the player was on",
            ["protocol", "pathway"],
            registry=registry,
        )
        self.throughput = Histogram(
            "liveward_steering_player_throughput_bps",
            "Throughput players reported with their steering requests",
            registry=registry,
            buckets=(5e5, 1e6, 2e6, 4e6, 8e6, 16e6, 32e6, 64e6, 128e6),
        )
        self.visible = Histogram(
            "liveward_steering_visible_seconds",
            "From a steering decision to this service answering with it",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

    def observe_request(self, protocol: str, request: SteeringRequest) -> None:
        self.players.labels(protocol, request.current_pathway or "none").inc()
        for value in request.throughput_bps:
            self.throughput.observe(value)

    def observe_visible(self, lag_ms: int) -> None:
        self.visible.observe(max(0, lag_ms) / 1000)


def create_steering_app(settings: Settings, source: SteeringSource) -> FastAPI:
    app = create_edge_app(
        "steering", max_body_bytes=settings.services.max_body_bytes, ready=source.ready
    )
    metrics = SteeringMetrics(app)
    app.state.steering_metrics = metrics
    order = tuple(p.id for p in pathways(settings))
    edge_hosts = {p.id: f"{settings.services.host}:{p.edge_port}" for p in pathways(settings)}

    def priority_and_ttl(content_id: str) -> tuple[list[str], int]:
        entry = source.entry(content_id)
        if entry is None and not source.is_live(content_id):
            raise UnknownContent(f"no live stream {content_id!r}")
        entry = entry or source.entry(DEFAULT_CONTENT)
        if entry is None:
            return list(order), settings.media.steering_ttl_s
        listed = list(entry.pathway_priority)
        return listed + [p for p in order if p not in listed], entry.ttl_seconds

    def steer(
        request: Request, content_id: str, *, dash: bool
    ) -> tuple[SteeringRequest, list[str], int, str]:
        try:
            parsed = parse_request(content_id, request.query_params.multi_items(), dash=dash)
            priority, ttl = priority_and_ttl(parsed.content_id)
        except MalformedRequest as exc:
            raise EdgeError(400, exc.reason, str(exc)) from exc
        except UnknownContent as exc:
            raise EdgeError(404, exc.reason, str(exc)) from exc
        metrics.observe_request("dash" if dash else "hls", parsed)
        session = parsed.session or secrets.token_urlsafe(12)
        reload_uri = str(request.url.replace(query=urlencode({SESSION_PARAM: session})))
        return parsed, priority, ttl, reload_uri

    @app.get("/v1/steering/{content_id}")
    async def hls(content_id: str, request: Request) -> Response:
        parsed, priority, ttl, reload_uri = steer(request, content_id, dash=False)
        manifest = hls_manifest(
            priority,
            ttl_s=ttl,
            reload_uri=reload_uri,
            current_pathway=parsed.current_pathway,
            edge_hosts=edge_hosts,
        )
        return json_response(manifest, headers=NO_STORE)

    @app.get("/v1/steering/{content_id}/dash")
    async def dash(content_id: str, request: Request) -> Response:
        _, priority, ttl, reload_uri = steer(request, content_id, dash=True)
        return json_response(
            dash_manifest(priority, ttl_s=ttl, reload_uri=reload_uri), headers=NO_STORE
        )

    return app
