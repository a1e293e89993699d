"""`liveward worker`: a Faust worker running every agent in processors/."""

from __future__ import annotations

import typer

from liveward.settings import load_settings


def worker(
    loglevel: str = typer.Option("warning", help="Faust log level."),
) -> None:
    """Run the stream processors (Faust agents) until interrupted."""
    from faust.worker import Worker

    from processors.app import create_app

    settings = load_settings()
    app = create_app(settings)
    Worker(app, loglevel=loglevel, workdir=str(settings.state_dir)).execute_from_commandline()
