"""`liveward serve`: run an HTTP edge in the foreground until interrupted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from liveward.settings import load_settings

app = typer.Typer(help="Run an HTTP edge (auth).", no_args_is_help=True)


@app.callback()
def serve() -> None:
    """Run an HTTP edge in the foreground; stop it with Ctrl-C or SIGTERM."""


@app.command("auth")
def auth(
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 8081).")] = None,
    host: Annotated[str | None, typer.Option(help="Address (default: loopback).")] = None,
    policy: Annotated[Path | None, typer.Option(help="Access policy file (TOML).")] = None,
    geo_city_db: Annotated[Path | None, typer.Option(help="MaxMind City/Country DB.")] = None,
    geo_asn_db: Annotated[Path | None, typer.Option(help="MaxMind ASN/ISP DB.")] = None,
    geo_anonymous_db: Annotated[Path | None, typer.Option(help="MaxMind Anonymous-IP DB.")] = None,
) -> None:
    """Playback tokens, subscribers, revocations and the JWKS, over HTTP."""
    from services.auth.server import run_auth_service

    settings = load_settings()
    overrides = {
        name: value
        for name, value in (
            ("policy_file", policy),
            ("geo_city_db", geo_city_db),
            ("geo_asn_db", geo_asn_db),
            ("geo_anonymous_db", geo_anonymous_db),
        )
        if value is not None
    }
    if overrides:
        settings = settings.model_copy(update={"auth": settings.auth.model_copy(update=overrides)})
    host = host or settings.services.host
    port = port or settings.services.auth_port
    Console().print(f"auth on http://{host}:{port} (stop with Ctrl-C)")
    run_auth_service(settings, host=host, port=port)
