"""`liveward drill`: failure stories against the live system, with the numbers they produce."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from liveward.settings import load_settings

app = typer.Typer(help="Drills: region loss, key leak, token theft.", no_args_is_help=True)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.3f} s"


@app.command("token-theft")
def token_theft(
    bound_s: float = typer.Option(10.0, help="Fail if enforcement everywhere takes longer."),
) -> None:
    """A stolen token replayed abroad: detection, enforcement everywhere, re-issue."""
    from infra.drills.token_theft import AuthInstance, drill_policy, run_token_theft_drill
    from infra.live_system import live_system, with_demo_geo

    console = Console()
    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="liveward-drill-") as scratch:
        work = Path(scratch)
        settings = with_demo_geo(base, work / "geo", drill_policy(work / "policy.toml"))
        regions = settings.regions[:2] if len(settings.regions) >= 2 else (settings.region,) * 2
        console.print("starting the stack, the stream processors and two auth instances")
        with live_system(settings, auth_regions=tuple(regions)) as system:
            instances = [AuthInstance(s.region, s.url) for s in system.of("auth")]
            console.print(
                f"auth instances: {', '.join(i.url for i in instances)}; stealing a token"
            )
            report = run_token_theft_drill(settings, instances)

    table = Table("figure", "value", title="token-theft drill")
    table.add_row("rule that fired", report.rule or "-")
    table.add_row(
        "time to detection (thief's first use → re-issue notice)", _seconds(report.detection_s)
    )
    for region, seconds in sorted(report.enforced_s.items()):
        table.add_row(f"time to enforcement at auth-{region}", _seconds(seconds))
    table.add_row("time to enforcement everywhere", _seconds(report.enforced_everywhere_s))
    table.add_row(
        "time to re-issue (detection → viewer plays on a fresh token)", _seconds(report.reissue_s)
    )
    table.add_row(
        "stolen-token requests that succeeded before enforcement", str(report.stolen_ok_before)
    )
    table.add_row(
        "stolen-token requests that succeeded after enforcement",
        f"{report.stolen_ok_after_enforcement} of "
        f"{report.stolen_ok_after_enforcement + report.stolen_refused_after_enforcement}",
    )
    table.add_row(
        "renewal with the stolen token refused", "yes" if report.stolen_renewal_refused else "NO"
    )
    console.print(table)
    everywhere = report.enforced_everywhere_s
    if not report.passed or everywhere is None or everywhere > bound_s:
        console.print("[red]drill failed[/]")
        raise typer.Exit(1)
    console.print("[green]drill passed[/]")
