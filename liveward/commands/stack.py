"""`liveward stack`: bring the local Kafka and ClickHouse stack up, show it, take it down."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.stack import ServiceStatus, Stack
from liveward.settings import load_settings

app = typer.Typer(help="The local Kafka and ClickHouse stack.", no_args_is_help=True)


class ClickHouseChoice(StrEnum):
    """Where analytics go: chdb inside the process, or a local clickhouse-server."""

    embedded = "embedded"
    server = "server"


@app.command()
def up(
    brokers: Annotated[
        int | None,
        typer.Option(
            help="Kafka nodes: 1, or 3 for replication 3 / min ISR 2. Default: from the settings."
        ),
    ] = None,
    clickhouse: Annotated[
        ClickHouseChoice | None,
        typer.Option(help="ClickHouse backend. Default: from the settings.", case_sensitive=False),
    ] = None,
) -> None:
    """Start Kafka (and a ClickHouse server if asked) and wait until they answer."""
    if brokers is not None and brokers not in (1, 3):
        raise typer.BadParameter("use 1 or 3 brokers", param_hint="--brokers")
    settings = load_settings()
    began = time.monotonic()
    rows = Stack(settings).up(brokers, clickhouse.value if clickhouse else None)
    console = Console()
    console.print(_table(rows))
    console.print(
        f"stack up in {time.monotonic() - began:.1f} s (state in {settings.state_dir.resolve()})"
    )


@app.command()
def status() -> None:
    """Show each service, its PID and address; exit 1 if the stack is not up or one is down."""
    settings = load_settings()
    rows = Stack(settings).status()
    console = Console()
    if not rows:
        console.print(f"the stack is not up (no record in {settings.state_dir})")
        raise typer.Exit(1)
    console.print(_table(rows))
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop what `up` started, by PID file (or container id with LIVEWARD_STACK=docker)."""
    stopped = Stack(load_settings()).down()
    Console().print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


def _table(rows: list[ServiceStatus]) -> Table:
    table = Table("service", "pid", "address", "healthy")
    for row in rows:
        table.add_row(
            row.service,
            "-" if row.pid is None else str(row.pid),
            row.address,
            "[green]yes[/]" if row.healthy else "[red]no[/]",
        )
    return table
