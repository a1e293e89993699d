"""`liveward analytics`: query the QoE tables, print the example queries, retention, DP export.

Every command uses the configured ClickHouse backend: the embedded one (chdb, whose data
path one process holds at a time: stop `liveward run` first, or point
`LIVEWARD_CLICKHOUSE__BACKEND=server` at a server) or the server. Migrations are applied
first, so a fresh data path answers with empty tables rather than errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from liveward.settings import Settings, load_settings
from sinks.clickhouse.backends import ClickHouseBackend

app = typer.Typer(
    help="Query the QoE analytics tables (embedded chdb or server).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@contextmanager
def _backend(settings: Settings) -> Iterator[ClickHouseBackend]:
    from sinks.clickhouse.backends import backend_for
    from sinks.clickhouse.migrations import apply_migrations

    backend = backend_for(settings)
    try:
        apply_migrations(backend)
        yield backend
    finally:
        backend.close()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL; ${database} stands for the database.")] = "",
    example: Annotated[
        str | None, typer.Option("--example", "-e", help="Run a documented example by name.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array per row.")] = False,
) -> None:
    """Run one SQL statement (or a documented example) and print the rows."""
    from string import Template

    from sinks.clickhouse.backends import quote_identifier
    from sinks.clickhouse.rollups import EXAMPLE_QUERIES

    settings = load_settings()
    database = settings.clickhouse.database
    if example is not None:
        chosen = {q.name: q for q in EXAMPLE_QUERIES}.get(example)
        if chosen is None:
            names = ", ".join(q.name for q in EXAMPLE_QUERIES)
            raise typer.BadParameter(f"no example {example!r}; there are: {names}")
        statement = chosen.for_database(database)
    elif sql:
        statement = Template(sql).safe_substitute(database=quote_identifier(database))
    else:
        raise typer.BadParameter("give SQL or --example NAME")
    with _backend(settings) as backend:
        rows = backend.execute(statement)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(list(row), default=str))
        return
    if not rows:
        Console().print("[dim](no rows)[/]")
        return
    table = Table(*(f"#{i}" for i in range(len(rows[0]))), show_header=False)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    Console().print(table)


@app.command()
def examples() -> None:
    """Print the documented example queries for the configured database."""
    from sinks.clickhouse.rollups import EXAMPLE_QUERIES

    database = load_settings().clickhouse.database
    for example in EXAMPLE_QUERIES:
        typer.echo(f"-- {example.name}: {example.question}")
        typer.echo(example.for_database(database) + ";\n")


@app.command()
def retention(
    keep_days: Annotated[
        int | None,
        typer.Option("--keep-days", min=0, help="Keep today and N days before it."),
    ] = None,
) -> None:
    """Drop day partitions older than the kept days from every analytics table."""
    from sinks.clickhouse.retention import apply_retention
    from streams.meta import now_ms

    settings = load_settings()
    days = settings.analytics.retention_days if keep_days is None else keep_days
    with _backend(settings) as backend:
        dropped = apply_retention(backend, now_ms=now_ms(), keep_days=days)
    if not dropped:
        typer.echo(f"nothing older than {days} days")
    for table, partitions in sorted(dropped.items()):
        typer.echo(f"{table}: dropped {', '.join(partitions)}")


@app.command("dp-export")
def dp_export(
    day: Annotated[
        str | None, typer.Option(help="UTC day of the data, YYYY-MM-DD [default: yesterday].")
    ] = None,
    epsilon: Annotated[
        float, typer.Option(min=0.0001, help="Privacy loss of this release.")
    ] = 0.25,
    cdn: Annotated[
        list[str] | None,
        typer.Option("--cdn", help="Also split by these CDNs (public names; repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the release as JSON.")] = False,
) -> None:
    """A differentially private release of one day's QoE per serving region (and CDN).

    Charged to that day's ε budget (`LIVEWARD_ANALYTICS__DP_EPSILON_PER_DAY`); refused,
    with exit code 2, when the budget would be exceeded.
    """
    from processors.dp import OpenDPLaplace
    from sinks.dp_export import export_day

    settings = load_settings()
    data_day = (
        date.fromisoformat(day)
        if day
        else date.fromordinal(datetime.now(UTC).date().toordinal() - 1)
    )
    regions = sorted(set(settings.regions))
    groups = [(r, c) for r in regions for c in sorted(set(cdn))] if cdn else [(r,) for r in regions]
    budget = settings.analytics.dp_epsilon_per_day
    with _backend(settings) as backend:
        release, spent = export_day(
            backend,
            data_day,
            groups=groups,
            epsilon=epsilon,
            budget=budget,
            mechanism=OpenDPLaplace(),
        )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "day": data_day.isoformat(),
                    "epsilon": release.epsilon,
                    "budget_left": round(budget - spent, 9),
                    "bounds": {
                        "sessions": release.bounds.sessions,
                        "play_s": release.bounds.play_s,
                        "rebuffer_s": release.bounds.rebuffer_s,
                    },
                    "rows": [
                        {
                            "group": list(row.group),
                            "viewers": row.viewers,
                            "sessions": row.sessions,
                            "play_s": row.play_s,
                            "rebuffer_s": row.rebuffer_s,
                            "rebuffer_ratio": row.rebuffer_ratio,
                        }
                        for row in release.rows
                    ],
                },
                indent=2,
            )
        )
        return
    table = Table(
        "group",
        "viewers",
        "sessions",
        "play hours",
        "rebuffer ratio",
        title=f"{data_day}: ε={epsilon:g} spent, {budget - spent:g} of {budget:g} left that day",
        caption="discrete Laplace noise (OpenDP); every figure is noisy, ratios from noisy sums",
    )
    for row in release.rows:
        ratio = row.rebuffer_ratio
        table.add_row(
            " / ".join(row.group),
            str(row.viewers),
            str(row.sessions),
            f"{row.play_s / 3600:.1f}",
            "-" if ratio is None else f"{ratio:.4f}",
        )
    Console().print(table)
