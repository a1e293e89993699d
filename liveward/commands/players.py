"""`liveward players run`: a fleet of simulated live players, then what they experienced."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from liveward.settings import load_settings

app = typer.Typer(
    help="Simulated live players (HLS, content steering, CMCD).", no_args_is_help=True
)


@app.callback()
def players() -> None:
    """Simulated live players."""


@app.command()
def run(
    count: Annotated[int, typer.Option(min=1, help="How many players.")] = 100,
    duration: Annotated[float, typer.Option(min=1.0, help="Seconds of playback.")] = 30.0,
    content: Annotated[
        str | None, typer.Option(help="Content id (default: the demo stream).")
    ] = None,
    ramp: Annotated[float, typer.Option(min=0.0, help="Seconds over which players join.")] = 2.0,
    bridge_url: Annotated[
        str | None,
        typer.Option(help="Telemetry bridge endpoint, e.g. http://127.0.0.1:8083/v1/telemetry."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Play for --duration seconds, then print availability, stalls, start-up and pathways."""
    from services.media.layout import DEFAULT_CONTENT
    from services.players.fleet import FleetConfig, entry_urls, run_fleet_blocking

    settings = load_settings()
    content_id = content or DEFAULT_CONTENT
    config = FleetConfig(
        entry_urls=entry_urls(settings, content_id),
        content_id=content_id,
        count=count,
        duration_s=duration,
        ramp_s=ramp,
        bridge_url=bridge_url,
    )
    console = Console()
    if not as_json:
        console.print(f"{count} players on {content_id} for {duration:.0f} s ...")
    result = run_fleet_blocking(config)
    summary = result.summary()
    figures = summary.as_dict()
    figures["telemetry"] = result.telemetry.as_dict() if result.telemetry else None
    figures["worst_stalls_s"] = sorted(
        (round(r.stalled_s, 3) for r in result.reports), reverse=True
    )[:10]
    if as_json:
        typer.echo(orjson.dumps(figures).decode())
    else:
        table = Table("figure", "value")
        for name, value in figures.items():
            table.add_row(name, str(value))
        console.print(table)
    if summary.started == 0:
        raise typer.Exit(1)
