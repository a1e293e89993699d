"""`liveward schemas`: regenerate the event dataclasses, store samples, check evolution."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

import streams
from schemas import SAMPLE_DIR, SCHEMA_DIR
from streams.codec import SchemaStore
from streams.codegen import write_events_module
from streams.evolution import compatibility_problems, write_missing_samples

app = typer.Typer(help="Event schemas: codegen, samples, compatibility.", no_args_is_help=True)

EVENTS_MODULE = Path(streams.__file__).parent / "events.py"


@app.command()
def generate() -> None:
    """Rewrite streams/events.py from schemas/*.avsc."""
    write_events_module(SCHEMA_DIR, EVENTS_MODULE)
    Console().print(f"wrote {EVENTS_MODULE}")


@app.command()
def samples() -> None:
    """Store an encoded sample for every schema version that has none (for evolution tests)."""
    written = write_missing_samples(SchemaStore.from_directory(SCHEMA_DIR), SAMPLE_DIR)
    for path in written:
        Console().print(f"wrote {path}")


@app.command()
def check() -> None:
    """Fail if a current schema cannot read an earlier version of itself."""
    console = Console()
    problems = []
    for old_path in sorted((SCHEMA_DIR / "history").glob("*/v*.avsc")):
        old = json.loads(old_path.read_text())
        new = json.loads((SCHEMA_DIR / f"{old['name']}.avsc").read_text())
        problems += [
            f"{old_path.parent.name} {old_path.stem}: {p}" for p in compatibility_problems(old, new)
        ]
    if problems:
        for problem in problems:
            console.print(f"[red]incompatible[/] {problem}")
        raise typer.Exit(1)
    console.print(
        f"{len(SchemaStore.from_directory(SCHEMA_DIR).versions())} schema versions, all readable"
    )
