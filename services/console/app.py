"""The console's HTTP routes: the pages, hls.js, the state, tokens for the player, actions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from liveward.settings import Settings
from liveward.topology import pathways
from services.console.actions import (
    ConsoleActions,
    parse_body,
    region_of,
    rotation_of,
    token_request_of,
    viewer_of,
)
from services.console.errors import ConsoleError
from services.console.tokens import ViewerTokens
from services.http import create_edge_app, json_response
from services.media.layout import MASTER_PLAYLIST, live_path

STATIC = Path(__file__).resolve().parent / "static"
REPOSITORY = Path(__file__).resolve().parents[2]
# The files a page may load from /static/, with their media types.
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "player.js": "text/javascript; charset=utf-8",
}
NO_STORE = {"Cache-Control": "no-store"}
MAX_BODY_BYTES = 16_384


def hlsjs_file(settings: Settings) -> Path:
    """hls.js as `npm ci` installed it; a relative setting is under the repository root."""
    path = settings.console.hlsjs_path
    return path if path.is_absolute() else REPOSITORY / path


def create_console_app(
    settings: Settings,
    *,
    snapshot: Callable[[], dict[str, Any]],
    actions: ConsoleActions,
    tokens: ViewerTokens,
    ready: Callable[[], bool] | None = None,
) -> FastAPI:
    """The console as an ASGI app; `snapshot` gives the folded state as JSON."""
    app = create_edge_app("console", max_body_bytes=MAX_BODY_BYTES, ready=ready)
    regions = tuple(settings.regions)
    console = settings.console
    host = settings.services.host

    def page(name: str) -> Response:
        return Response(
            (STATIC / name).read_bytes(), media_type="text/html; charset=utf-8", headers=NO_STORE
        )

    @app.get("/")
    def console_page() -> Response:
        return page("console.html")

    @app.get("/player")
    def player_page() -> Response:
        return page("player.html")

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise ConsoleError(404, "not-found", f"no asset {name[:64]!r}")
        return Response((STATIC / name).read_bytes(), media_type=media_type, headers=NO_STORE)

    @app.get("/vendor/hls.min.js")
    def hlsjs() -> Response:
        path = hlsjs_file(settings)
        if not path.is_file():
            raise ConsoleError(
                404, "hlsjs-missing", f"{path} is missing: run `npm ci` in {REPOSITORY}"
            )
        return Response(
            path.read_bytes(),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "max-age=3600"},
        )

    @app.get("/api/config")
    def config() -> Response:
        paths = [
            {
                "id": p.id,
                "region": p.region,
                "cdn": p.cdn,
                "base_url": f"http://{host}:{p.edge_port}",
            }
            for p in pathways(settings)
        ]
        return json_response(
            {
                "viewer_id": console.viewer_id,
                "content_id": console.content_id,
                "regions": list(regions),
                "cdns": list(settings.media.cdns),
                "pathways": paths,
                "entry_path": live_path("{content}", MASTER_PLAYLIST),
                "token_lifetime_s": settings.auth.token_lifetime_s,
                "key_period_s": settings.keys.period_seconds,
            },
            headers=NO_STORE,
        )

    @app.get("/api/state")
    def state() -> Response:
        return json_response(snapshot(), headers=NO_STORE)

    @app.post("/api/token")
    async def token(request: Request) -> Response:
        body = parse_body(await request.body())
        viewer_id, content_id, renew = token_request_of(body, console.viewer_id, console.content_id)
        client_ip = request.client.host if request.client is not None else host
        issued = await run_in_threadpool(
            tokens.token_for, viewer_id, content_id, client_ip=client_ip, renew=renew
        )
        return json_response(issued.answer(), headers=NO_STORE)

    @app.post("/api/actions/kill-region")
    async def kill_region(request: Request) -> Response:
        region = region_of(parse_body(await request.body()), regions)
        return _done("kill-region", await run_in_threadpool(actions.kill_region, region))

    @app.post("/api/actions/restore-region")
    async def restore_region(request: Request) -> Response:
        region = region_of(parse_body(await request.body()), regions)
        return _done("restore-region", await run_in_threadpool(actions.restore_region, region))

    @app.post("/api/actions/revoke-viewer")
    async def revoke_viewer(request: Request) -> Response:
        viewer = viewer_of(parse_body(await request.body()), console.viewer_id)
        return _done("revoke-viewer", await run_in_threadpool(actions.revoke_viewer, viewer))

    @app.post("/api/actions/rotate-keys")
    async def rotate_keys(request: Request) -> Response:
        rotation_of(parse_body(await request.body()))
        return _done("rotate-keys", await run_in_threadpool(actions.rotate_keys))

    return app


def _done(action: str, outcome: dict[str, Any]) -> Response:
    return json_response({"action": action, "outcome": outcome}, headers=NO_STORE)
