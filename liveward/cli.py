"""The `liveward` command line: one entry point for the stack, topics, workers, runs and benches."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from liveward.errors import LivewardError

app = typer.Typer(
    name="liveward",
    help="Privacy and high availability for live video streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from liveward.commands import (
        analytics,
        audit,
        bench,
        control,
        drill,
        geo,
        keys,
        players,
        privacy,
        regions,
        replay,
        run,
        schemas,
        serve,
        stack,
        subscribers,
        topics,
        worker,
    )

    app.add_typer(stack.app, name="stack")
    app.add_typer(topics.app, name="topics")
    app.add_typer(schemas.app, name="schemas")
    app.add_typer(bench.app, name="bench")
    app.add_typer(geo.app, name="geo")
    app.add_typer(serve.app, name="serve")
    app.add_typer(subscribers.app, name="subscribers")
    app.add_typer(audit.app, name="audit")
    app.add_typer(drill.app, name="drill")
    app.add_typer(keys.app, name="keys")
    app.add_typer(control.app, name="control")
    app.add_typer(regions.app, name="regions")
    app.add_typer(players.app, name="players")
    app.add_typer(analytics.app, name="analytics")
    app.add_typer(privacy.app, name="privacy")
    app.command("replay")(replay.replay)
    app.command("worker")(worker.worker)
    app.command("run")(run.run)


def main() -> None:
    """Run the CLI; a LivewardError becomes a one-line message and exit code 2."""
    _register()
    try:
        app()
    except LivewardError as exc:
        Console(stderr=True).print(f"[bold red]error[/] {escape(f'[{exc.reason}] {exc}')}")
        sys.exit(2)


if __name__ == "__main__":
    main()
