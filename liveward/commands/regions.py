"""`liveward regions`: the simulated regions as processes — up, status, kill (for drills), down."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from liveward.settings import Settings, load_settings

if TYPE_CHECKING:
    from services.media.region import RegionProcesses

app = typer.Typer(
    help="Simulated regions: ingest, hot-hot packagers, origin and CDN edges per region.",
    no_args_is_help=True,
)

RegionsOption = Annotated[
    list[str] | None,
    typer.Option("--regions", "-r", help="Regions (repeatable). Default: every configured one."),
]


def _regions(
    settings: Settings, names: list[str] | None, contents: list[str] | None = None
) -> list[RegionProcesses]:
    from services.media.layout import DEFAULT_CONTENT
    from services.media.region import regions_of

    return regions_of(settings, names, contents=tuple(contents or (DEFAULT_CONTENT,)))


@app.command()
def up(
    regions: RegionsOption = None,
    content: Annotated[
        list[str] | None, typer.Option(help="Live content ids (repeatable).")
    ] = None,
) -> None:
    """Start the regions' processes and wait until every edge serves a live window.

    Kafka must be up. Only processes that are not running are started, so running it again
    after a kill brings those processes back.
    """
    from streams.topics import apply_topics

    settings = load_settings()
    apply_topics(settings)
    from services.media.region import start_all

    started = _regions(settings, regions, content)
    start_all(started, ready_timeout=60.0)
    console = Console()
    console.print(_table(started))
    console.print(f"players start at {started[0].edge_urls()[0]}/live/<content>/master.m3u8")


@app.command()
def status(regions: RegionsOption = None) -> None:
    """Each region's processes, their PIDs and URLs; exit 1 if one is not running."""
    found = _regions(load_settings(), regions)
    Console().print(_table(found))
    if any(row.pid is None for region in found for row in region.status()):
        raise typer.Exit(1)


@app.command()
def down(regions: RegionsOption = None) -> None:
    """Stop every process of the regions (SIGTERM by PID file)."""
    for region in _regions(load_settings(), regions):
        region.stop()
    Console().print("regions stopped")


@app.command()
def kill(region: Annotated[str, typer.Argument(help="The region to lose.")]) -> None:
    """SIGKILL every process of one region at once (a region loss)."""
    killed = _regions(load_settings(), [region])[0].kill()
    Console().print(f"killed {', '.join(killed)} of {region}" if killed else "nothing was running")


@app.command("kill-packager")
def kill_packager(
    region: Annotated[str, typer.Argument()],
    packager: Annotated[str, typer.Argument(help="Which of the pair: a or b.")],
) -> None:
    """SIGKILL one packager of a region's hot-hot pair (players should not notice)."""
    name = packager.lower()
    if name not in ("a", "b"):
        raise typer.BadParameter("a or b", param_hint="PACKAGER")
    done = _regions(load_settings(), [region])[0].kill_packager(name)
    Console().print(f"killed packager-{name} of {region}" if done else "it was not running")


@app.command("kill-edge")
def kill_edge(
    region: Annotated[str, typer.Argument()],
    cdn: Annotated[str, typer.Argument(help="The CDN whose edge in that region dies.")],
) -> None:
    """SIGKILL one CDN edge of a region (players fall back to another pathway)."""
    done = _regions(load_settings(), [region])[0].kill_edge(cdn)
    Console().print(f"killed the {cdn} edge of {region}" if done else "it was not running")


def _table(regions: list[RegionProcesses]) -> Table:
    table = Table("region", "process", "pid", "url")
    for region in regions:
        for row in region.status():
            table.add_row(
                row.region,
                row.role,
                "[red]down[/]" if row.pid is None else str(row.pid),
                row.url or "-",
            )
    return table
