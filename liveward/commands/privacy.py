"""`liveward privacy scan`: look for raw identifiers in every analytics topic and table.

Exit 0 when nothing is found, 1 with what and where when something is (masked, so the
report does not spread it), 2 on a usage or connection error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from liveward.settings import load_settings

app = typer.Typer(
    help="Privacy checks on the analytics data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Privacy checks on the analytics data."""


@app.command()
def scan(
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="Scan these topics instead of every analytics topic."),
    ] = None,
    tables: Annotated[
        bool, typer.Option("--tables/--no-tables", help="Scan the ClickHouse tables too.")
    ] = True,
    known_ids: Annotated[
        Path | None,
        typer.Option(help="A file of raw viewer ids (one per line) that must not appear."),
    ] = None,
    subscribers: Annotated[
        bool,
        typer.Option(
            "--subscribers/--no-subscribers",
            help="Also take the raw ids held by the subscribers topic.",
        ),
    ] = True,
) -> None:
    """Scan analytics topics and every ClickHouse table for raw viewer ids, IPs, emails..."""
    from sinks.clickhouse.backends import backend_for
    from sinks.privacy import ANALYTICS_TOPICS
    from sinks.privacy import scan as run_scan

    settings = load_settings()
    ids = (
        [line.strip() for line in known_ids.read_text().splitlines() if line.strip()]
        if known_ids
        else []
    )
    console = Console()
    backend = backend_for(settings) if tables else None
    try:
        with console.status("reading every record of the analytics topics and tables"):
            report = run_scan(
                settings,
                backend,
                topics=topic or ANALYTICS_TOPICS,
                known_ids=ids,
                read_subscribers=subscribers,
            )
    finally:
        if backend is not None:
            backend.close()

    scanned = Table("scanned", "records/rows", title="privacy scan")
    for name, count in sorted(report.records.items()):
        scanned.add_row(f"topic {name}", f"{count:,}")
    for name, count in sorted(report.tables.items()):
        scanned.add_row(f"table {settings.clickhouse.database}.{name}", f"{count:,}")
    for name in report.missing_topics:
        scanned.add_row(f"topic {name}", "[dim]does not exist[/]")
    console.print(scanned)
    if report.clean:
        console.print("[green]no direct identifiers found[/]")
        return
    found = Table("where", "field", "identifier", "count", "first seen", title="FOUND")
    for source, field, kind, count, first in report.summary():
        found.add_row(source, field, kind, str(count), f"{first.where}: {first.hit.masked}")
    console.print(found)
    raise typer.Exit(1)
