"""`liveward keys`: rotate key epochs (emergency too), show their status, run the rotation loop.

Nothing here ever prints a key: epochs, periods and key ids only.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from liveward.settings import load_settings
from services.keys.kms import local_keks_of_every_region
from services.keys.local import caught_up_key_store, local_rotator
from services.keys.rotation import RotationOutcome, Rotator
from services.keys.timeline import (
    EpochInfo,
    RotationPolicy,
    epoch_in_force,
)
from streams.events import PackagerManifestState
from streams.meta import now_ms
from streams.producer import EventProducer
from streams.views import CompactedTopicView

app = typer.Typer(
    help="Content keys: epochs, emergency rotation, status, the rotation loop.",
    no_args_is_help=True,
)

MANIFEST_TOPIC = "ingest.manifest-state"

Timeout = Annotated[float, typer.Option(help="Seconds to wait for Kafka.")]
PeriodSeconds = Annotated[
    int | None,
    typer.Option(
        help="Key period length for the first epoch (later epochs keep the chain's). "
        "Default: the chain's, or LIVEWARD_KEYS__PERIOD_SECONDS."
    ),
]
Contents = Annotated[
    list[str] | None,
    typer.Option("--content", help="A content id to announce periods for (repeatable)."),
]


def _console() -> Console:
    # Soft wrap: ids stay whole on one line for whoever copies or parses them.
    return Console(soft_wrap=True)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command()
def rotate(
    emergency: Annotated[
        bool,
        typer.Option(
            "--emergency",
            help="The new epoch governs the current period at once (licenses must be "
            "fetched again) and epochs published to start later are withdrawn.",
        ),
    ] = False,
    period_seconds: PeriodSeconds = None,
    content: Contents = None,
    timeout: Timeout = 30.0,
) -> None:
    """Start a new key epoch: at the earliest boundary no license carries, or --emergency now."""
    settings = load_settings()
    began = time.monotonic()
    policy = RotationPolicy(period_seconds=period_seconds or settings.keys.period_seconds)
    with local_rotator(settings, timeout, policy, content) as r:
        outcome = r.rotate(emergency=emergency)
    console = _console()
    for epoch in outcome.created:
        kind = "emergency epoch" if epoch.emergency else "epoch"
        console.print(
            f"{kind} [bold]{epoch.epoch_id}[/] governs from {_utc(epoch.started_at)} "
            f"(period {epoch.started_at // (epoch.period_seconds * 1000)}, "
            f"{epoch.period_seconds}-s periods); wrapped for {', '.join(epoch.regions)}"
        )
    for epoch_id in outcome.withdrawn:
        console.print(f"withdrew pending epoch {epoch_id}")
    for event in outcome.announced:
        console.print(f"announced {event.content_id} period {event.period} key id {event.key_id}")
    console.print(f"confirmed by Kafka in {time.monotonic() - began:.2f} s")


@app.command("rotate-kek")
def rotate_kek(
    region: Annotated[
        str | None, typer.Option(help="Whose KEK to rotate. Default: this region.")
    ] = None,
    timeout: Timeout = 30.0,
) -> None:
    """Add a new KEK version for a region and re-wrap every epoch under it (keys unchanged)."""
    settings = load_settings()
    region = region or settings.region
    keks = local_keks_of_every_region(settings)
    if region not in keks:
        raise typer.BadParameter(f"{region} is not a configured region", param_hint="--region")
    kek_id = keks[region].rotate()
    with caught_up_key_store(settings, timeout) as keys:
        producer = EventProducer(settings)
        try:
            rewrapped = Rotator(keys, keks, producer).rewrap()
        finally:
            producer.close()
    _console().print(f"{region} wraps with {kek_id} now; re-wrapped {len(rewrapped)} epochs")


@app.command()
def rewrap(timeout: Timeout = 30.0) -> None:
    """Re-publish every epoch wrapped for every configured region (after adding a region)."""
    settings = load_settings()
    with local_rotator(settings, timeout, RotationPolicy()) as rotator:
        rewrapped = rotator.rewrap()
    _console().print(f"re-wrapped {len(rewrapped)} epochs for {', '.join(settings.regions)}")


def _state(epoch: EpochInfo, current: EpochInfo | None, now: int, unavailable: str | None) -> str:
    kind = " (emergency)" if epoch.emergency else ""
    if unavailable is not None:
        return f"[red]unavailable here: {unavailable}[/]{kind}"
    if current is not None and epoch.epoch_id == current.epoch_id:
        return f"[green]in force[/]{kind}"
    return f"pending{kind}" if epoch.started_at > now else f"[dim]superseded[/]{kind}"


@app.command()
def status(content: Contents = None, timeout: Timeout = 30.0) -> None:
    """Epochs (never keys), the current period, and key ids of the given contents."""
    settings = load_settings()
    console = _console()
    if not console.is_terminal:
        # Piped output has no width to respect; ids stay whole instead of being cut.
        console.width = max(console.width, 132)
    with caught_up_key_store(settings, timeout) as keys:
        now = now_ms()
        epochs = keys.epochs()
        unavailable = keys.unavailable()
        current = epoch_in_force(epochs, now)
        table = Table(
            Column("epoch", no_wrap=True),
            Column("governs from", no_wrap=True),
            "state",
            Column("copies (KEK ids)", no_wrap=True),
        )
        for epoch in epochs:
            table.add_row(
                epoch.epoch_id,
                _utc(epoch.started_at),
                _state(epoch, current, now, unavailable.get(epoch.epoch_id)),
                "\n".join(epoch.kek_ids),
            )
        console.print(table)
        for epoch_id, reason in keys.rejected.items():
            console.print(f"[yellow]ignored[/] epoch {epoch_id}: {reason}")
        if current is None:
            console.print(f"no epoch in force in {keys.region}: run `liveward keys rotate`")
            raise typer.Exit(1)
        period = keys.period_at(now)
        console.print(
            f"{keys.region}: {current.period_seconds}-s period {period.number} "
            f"[{_utc(period.start_ms)}, "
            f"{_utc(period.end_ms)}), epoch {current.epoch_id}"
        )
        for content_id in content or ():
            for label, key in zip(
                ("current", "next"), keys.current_and_next(content_id, now), strict=True
            ):
                console.print(
                    f"{content_id} {label} period {key.period}: key id {key.key_id} "
                    f"(epoch {key.epoch_id})"
                )


@app.command()
def run(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds. Default: until Ctrl-C.")
    ] = None,
    period_seconds: PeriodSeconds = None,
    epoch_seconds: Annotated[
        int | None,
        typer.Option(help="How long an epoch governs before the next one. Default: settings."),
    ] = None,
    lead_seconds: Annotated[
        int | None, typer.Option(help="How early the next epoch is published. Default: settings.")
    ] = None,
    content: Contents = None,
    follow_packagers: Annotated[
        bool,
        typer.Option(help=f"Announce periods for every content on {MANIFEST_TOPIC} too."),
    ] = True,
    timeout: Timeout = 30.0,
) -> None:
    """The rotation loop: keeps an epoch in force, publishes the next, announces periods."""
    settings = load_settings()
    console = _console()
    policy = RotationPolicy(
        period_seconds=period_seconds or settings.keys.period_seconds,
        epoch_seconds=epoch_seconds or settings.keys.epoch_seconds,
        lead_seconds=lead_seconds or settings.keys.lead_seconds,
    )
    fixed = list(dict.fromkeys(content or ()))
    packagers: CompactedTopicView[PackagerManifestState] | None = None
    if follow_packagers:
        packagers = CompactedTopicView(settings, MANIFEST_TOPIC, PackagerManifestState)
        packagers.start(timeout)
        packagers.wait_ready(timeout)

    def contents() -> list[str]:
        seen = {event.content_id for _, event in packagers.items()} if packagers else set()
        return list(dict.fromkeys([*fixed, *sorted(seen)]))

    def show(outcome: RotationOutcome) -> None:
        for epoch in outcome.created:
            console.print(
                f"epoch {epoch.epoch_id} published, governs from {_utc(epoch.started_at)}"
            )
        if outcome.announced:
            first = outcome.announced[0]
            console.print(
                f"period {first.period} ({_utc(first.period_start)}): "
                f"{len(outcome.announced)} contents, epoch {first.epoch_id}"
            )

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with caught_up_key_store(settings, timeout) as keys:
            producer = EventProducer(settings)
            try:
                rotator = Rotator(
                    keys,
                    local_keks_of_every_region(settings),
                    producer,
                    policy=policy,
                    contents=contents,
                )
                console.print(
                    f"rotating keys from {settings.region} "
                    f"({rotator.schedule().period_seconds}-s periods)"
                )
                rotator.run(stop, duration=duration, on_step=show)
            finally:
                producer.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if packagers is not None:
            packagers.close()
