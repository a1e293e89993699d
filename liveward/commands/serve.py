"""`liveward serve`: run an HTTP edge in the foreground until interrupted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from liveward.settings import load_settings
from services.license.window import LATE_GRACE_S

app = typer.Typer(
    help="Run an HTTP/gRPC edge (auth, license, bridge, steering).", no_args_is_help=True
)


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


@app.command("license")
def license_(
    port: Annotated[int | None, typer.Option(help="REST port (default: settings, 8082).")] = None,
    grpc_port: Annotated[
        int | None, typer.Option(help="gRPC port (default: settings, 50051).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address (default: loopback).")] = None,
    late_grace_s: Annotated[
        float,
        typer.Option(help="How far behind live a player may still ask for a period's key (s)."),
    ] = LATE_GRACE_S,
    epochs_topic: Annotated[
        str, typer.Option(hidden=True, help="Key epochs topic (tests isolate their own).")
    ] = "keys.epochs",
    policy: Annotated[Path | None, typer.Option(help="Access policy file (TOML).")] = None,
    linger_ms: Annotated[
        float | None,
        typer.Option(
            help="Kafka linger for license records, ms: latency against broker requests "
            "(default 0)."
        ),
    ] = None,
) -> None:
    """ClearKey licenses and HLS AES-128 keys, over REST and gRPC in one process."""
    from services.license.server import run_license_service

    settings = load_settings()
    if policy is not None:
        settings = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"policy_file": policy})}
        )
    host = host or settings.services.host
    port = port or settings.services.license_port
    grpc_port = grpc_port or settings.services.license_grpc_port
    Console().print(
        f"license on http://{host}:{port} and gRPC {host}:{grpc_port} (stop with Ctrl-C)"
    )
    run_license_service(
        settings,
        host=host,
        port=port,
        grpc_port=grpc_port,
        epochs_topic=epochs_topic,
        late_grace_s=late_grace_s,
        **({} if linger_ms is None else {"linger_ms": linger_ms}),
    )


@app.command("bridge")
def bridge(
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 8083).")] = None,
    host: Annotated[str | None, typer.Option(help="Address (default: loopback).")] = None,
    workers: Annotated[int | None, typer.Option(help="Serving processes (default 1).")] = None,
) -> None:
    """Player telemetry (JSON and CMCD) into qoe.telemetry, pseudonymised at the edge."""
    from services.bridge.server import run_bridge_service

    settings = load_settings()
    host = host or settings.services.host
    port = port or settings.services.bridge_port
    Console().print(f"bridge on http://{host}:{port} (stop with Ctrl-C)")
    run_bridge_service(settings, host=host, port=port, workers=workers)


@app.command("steering")
def steering(
    port: Annotated[int | None, typer.Option(help="Port (default: settings, 8084).")] = None,
    host: Annotated[str | None, typer.Option(help="Address (default: loopback).")] = None,
) -> None:
    """HLS and DASH content steering manifests, following the control plane's decisions."""
    from services.steering.server import run_steering_service

    settings = load_settings()
    host = host or settings.services.host
    port = port or settings.services.steering_port
    Console().print(f"steering on http://{host}:{port} (stop with Ctrl-C)")
    run_steering_service(settings, host=host, port=port)
