"""`liveward drill`: failure stories against the live system, with the numbers they produce."""

from __future__ import annotations

import tempfile
import time
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


def _exposure(exposure: object) -> str:
    from services.keys.exposure import Exposure

    assert isinstance(exposure, Exposure)
    contents = "every content" if exposure.content_ids is None else ", ".join(exposure.content_ids)
    if exposure.periods is None:
        return f"{contents}, from period {exposure.first_period} on (open-ended)"
    return (
        f"{contents}, periods {exposure.first_period}..{exposure.last_period} "
        f"({exposure.periods} x {exposure.period_seconds} s)"
    )


@app.command("key-leak")
def key_leak(
    bound_s: float = typer.Option(10.0, help="Fail if a region takes longer to switch keys."),
) -> None:
    """A content key, then an epoch master key, leak: blast radius and containment."""
    from infra.drills.key_leak import LicenseInstance, run_key_leak_drill
    from infra.live_system import live_system, with_demo_geo

    console = Console()
    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="liveward-drill-") as scratch:
        settings = with_demo_geo(base, Path(scratch) / "geo")
        # The drill plays from behind a local edge that reports the viewer's address.
        settings = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"trusted_proxies": ("127.0.0.1/32",)})}
        )
        regions = tuple(settings.regions[:2])
        console.print("starting the stack, the stream processors, auth and two license regions")
        with live_system(settings, auth_regions=regions[:1], license_regions=regions) as system:
            instances = [LicenseInstance(s.region, s.url) for s in system.of("license")]
            console.print("leaking a content key, then a master key")
            report = run_key_leak_drill(settings, system.of("auth")[0].url, instances)

    table = Table("figure", "value", title="key-leak drill")
    for name, leak in (("content key", report.content_leak), ("master key", report.master_leak)):
        if leak is None:
            table.add_row(f"{name} leak", "not reached")
            continue
        table.add_row(f"{name}: exposed when it leaked", _exposure(leak.exposure_before))
        table.add_row(f"{name}: exposed after the response", _exposure(leak.exposure_after))
        for region, seconds in sorted(leak.switch_s.items()):
            table.add_row(f"{name}: {region} serves only new keys after", _seconds(seconds))
        table.add_row(
            f"{name}: licenses with a leaked key after the switch",
            f"{leak.leaked_keys_served_after} of {leak.checks_after}",
        )
    table.add_row("sessions revoked (held the leaked content key)", str(report.sessions_revoked))
    table.add_row("the leaker's next license request", report.leaker_refusal or "-")
    table.add_row("a request naming the leaked key id", report.leaked_kid_refusal or "-")
    console.print(table)
    slowest = max(
        (
            leak.switched_everywhere_s or bound_s + 1
            for leak in (report.content_leak, report.master_leak)
            if leak
        ),
        default=bound_s + 1,
    )
    if not report.passed or slowest > bound_s:
        console.print("[red]drill failed[/]")
        raise typer.Exit(1)
    console.print("[green]drill passed[/]")


@app.command("region-loss")
def region_loss(
    players: int = typer.Option(200, help="Simulated players per phase."),
    bound_s: float = typer.Option(10.0, help="Fail if players take longer to move."),
) -> None:
    """Lose a packager, a CDN edge, then a whole region, with players watching."""
    from infra.drills.region_loss import run_region_loss_drill
    from infra.live_system import live_system
    from liveward.commands.replay import compare_control_plane

    console = Console()
    settings = load_settings()
    regions = tuple(settings.regions[:2])
    console.print("starting the stack, the control plane, steering and two regions")
    with live_system(settings, media_regions=regions, steering=True) as system:
        console.print(f"{players} players per phase: packager loss, CDN loss, region loss")
        report = run_region_loss_drill(settings, system.media, players=players)
        # The state the control plane derived must be rebuildable from the log alone.
        replay_rows = replay_mismatches = 0
        for _ in range(3):
            comparison = compare_control_plane(settings, 30.0)
            replay_rows, replay_mismatches = len(comparison.rows), comparison.mismatches
            if not replay_mismatches:
                break
            time.sleep(1.0)

    table = Table(
        "figure", "packager loss", "CDN edge loss", "region loss", title="region-loss drill"
    )
    phases = (report.packager, report.cdn, report.region)
    table.add_row("what failed", *(p.failure for p in phases))
    table.add_row(
        "99% of players fetching from",
        *(f"{where} after {_seconds(p.moved_99_s)}" for where, p in zip(
            ("the same region", "the same region", "the surviving region"), phases, strict=True
        )),
    )  # fmt: skip
    table.add_row(
        "players who stalled",
        *(f"{p.summary.stalled_players} of {p.summary.players}" for p in phases),
    )
    table.add_row("longest stall", *(f"{p.summary.longest_stall_s:.2f} s" for p in phases))
    table.add_row("stall p99", *(_seconds(p.summary.stall_p99_s) for p in phases))
    table.add_row(
        "availability (served / wanted)", *(f"{p.summary.availability:.5f}" for p in phases)
    )
    console.print(table)
    stalls = report.region.stalls_s
    console.print(
        f"region loss, each player's stall time: {sum(1 for x in stalls if not x)} players 0 s"
        + "".join(f", {x:.2f} s" for x in sorted((x for x in stalls if x), reverse=True))
    )
    console.print(
        f"replay of the control plane from the log: {replay_rows} states, "
        f"{replay_mismatches} differ from live"
    )
    console.print(
        f"region loss: detection {_seconds(report.detection_s)}, decision "
        f"{_seconds(report.decision_s)} ({report.decision_reason or 'no decision seen'}), "
        f"99% of players on the surviving region {_seconds(report.region.moved_99_s)} "
        f"after the kill (bound {bound_s:g} s)"
    )
    if not report.passed(bound_s) or replay_mismatches or not replay_rows:
        console.print("[red]drill failed[/]")
        raise typer.Exit(1)
    console.print("[green]drill passed[/]")
