"""`liveward topics`: the topic catalog, and idempotent provisioning on the broker."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from liveward.settings import load_settings
from streams.catalog import CATALOG
from streams.topics import apply_topics

app = typer.Typer(help="The topic catalog and its provisioning.", no_args_is_help=True)


@app.command("list")
def list_topics() -> None:
    """Print the catalog: name, event, key, partitions, cleanup policy, retention."""
    table = Table("topic", "event", "key", "partitions", "cleanup", "retention")
    for spec in CATALOG:
        retention = "-" if spec.retention_ms is None else f"{spec.retention_ms / 3_600_000:g} h"
        table.add_row(
            spec.name,
            spec.event_type.SCHEMA_NAME,
            "|".join(spec.key_fields),
            str(spec.partitions),
            spec.cleanup_policy,
            retention,
        )
    Console().print(table)


@app.command("apply")
def apply() -> None:
    """Create missing topics; report (exit 1) any existing topic whose config differs."""
    report = apply_topics(load_settings())
    console = Console()
    for name in report.created:
        console.print(f"[green]created[/]   {name}")
    for name in report.unchanged:
        console.print(f"[dim]unchanged[/] {name}")
    for drift in report.drifts:
        console.print(
            f"[yellow]drift[/]     {drift.topic}: {drift.setting} is {drift.actual}, "
            f"catalog wants {drift.wanted}"
        )
    if report.drifts:
        raise typer.Exit(1)
