"""`liveward subscribers load FILE`: subscriber records from JSON lines or CSV onto Kafka."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from liveward.settings import load_settings

app = typer.Typer(
    help="Subscriber entitlements (the compacted subscribers topic).", no_args_is_help=True
)


@app.callback()
def subscribers() -> None:
    """Subscriber entitlements on the compacted `subscribers.entitlements` topic."""


# Records per confirmed batch: large enough for throughput, small enough to report progress.
BATCH = 10_000
CATCH_UP_TIMEOUT_S = 120.0


@app.command("load")
def load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    skip_invalid: Annotated[
        bool, typer.Option(help="Load the valid lines even when some are not.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Only check the file.")] = False,
) -> None:
    """Validate every line; unless one is invalid (see --skip-invalid), store them all.

    Each record replaces the viewer's entitlements and keeps its session version. Exits
    1 when any line is invalid, 0 otherwise; every invalid line is reported by number.
    """
    from services.auth.bulk import detect_format, parse_subscribers, to_events
    from services.auth.service import SUBSCRIBERS_TOPIC
    from streams.events import SubscriberEntitlements
    from streams.meta import now_ms
    from streams.producer import EventProducer
    from streams.views import CompactedTopicView

    console = Console()
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    file_format = detect_format(file.name, next((x for x in lines if x.strip()), ""))
    parsed = parse_subscribers(lines, file_format)
    for error in parsed.errors:
        console.print(f"[red]{file.name}:{error.line}[/] {error.message}", highlight=False)
    summary = f"{len(parsed.records)} valid, {len(parsed.errors)} invalid ({file_format})"
    if dry_run or (parsed.errors and not skip_invalid):
        verdict = "nothing loaded" if not dry_run else "dry run"
        console.print(f"{summary}: {verdict}")
        raise typer.Exit(1 if parsed.errors else 0)

    settings = load_settings()
    view: CompactedTopicView[SubscriberEntitlements] = CompactedTopicView(
        settings, SUBSCRIBERS_TOPIC, SubscriberEntitlements
    )
    producer = EventProducer(settings)
    try:
        view.start()
        if not view.wait_ready(CATCH_UP_TIMEOUT_S):
            console.print("[red]could not read the current subscribers in time[/]")
            raise typer.Exit(2)
        events = to_events(
            parsed.records,
            view.get,
            now_ms=now_ms(),
            region=settings.region,
            new_id=lambda: str(uuid.uuid4()),
        )
        for start in range(0, len(events), BATCH):
            producer.send_all(SUBSCRIBERS_TOPIC, events[start : start + BATCH])
    finally:
        view.close()
        producer.close()
    console.print(f"{summary}: loaded {len(events)} subscribers")
    raise typer.Exit(1 if parsed.errors else 0)
