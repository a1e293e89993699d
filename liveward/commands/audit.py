"""`liveward audit`: verify the license log, print proofs, check proofs from the public key alone.

Every command prints JSON on stdout. `verify` and `check-proof` exit 1 when the log or
the proof fails, naming what failed (also on stderr, in words); usage errors exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from liveward.settings import load_settings
from sinks.worm.audit import check_bundle, consistency_bundle, inclusion_bundle, verify_log
from sinks.worm.errors import WormError
from sinks.worm.keys import default_log_dir, load_public_key, public_key_path
from sinks.worm.log import LogReader

app = typer.Typer(
    help="Check and prove the tamper-evident license log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

LogOption = Annotated[
    Path | None,
    typer.Option("--log", help="Log directory [default: <state>/worm/log]."),
]


def _print(document: dict[str, Any]) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _log_dir(log: Path | None) -> Path:
    return log if log is not None else default_log_dir(load_settings())


@app.command()
def verify(
    log: LogOption = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="PEM or C2SP verifier key [default: <state>/worm/log-signing-key.pub].",
        ),
    ] = None,
) -> None:
    """Recompute the whole log and check every checkpoint's signature and root."""
    key, name = load_public_key(public_key or public_key_path(load_settings()))
    report = verify_log(_log_dir(log), key, name=name)
    _print(report.as_json())
    if not report.ok:
        console = Console(stderr=True)
        console.print(f"[bold red]license log FAILED[/] {len(report.problems)} problem(s):")
        for problem in report.problems[:10]:
            where = escape(f"{problem.where}: {problem.detail}")
            console.print(f"  [red]{escape(problem.reason)}[/] {where}")
        raise typer.Exit(1)


@app.command()
def prove(
    record: Annotated[
        int | None, typer.Option("--record", help="Inclusion proof for this record (0-based).")
    ] = None,
    size1: Annotated[
        int | None, typer.Option("--from", help="Consistency proof from this checkpoint size.")
    ] = None,
    size2: Annotated[
        int | None,
        typer.Option("--to", help="...to this checkpoint size [default: the latest]."),
    ] = None,
    at: Annotated[
        int | None,
        typer.Option("--size", help="Prove --record against this checkpoint [default: latest]."),
    ] = None,
    log: LogOption = None,
) -> None:
    """Print an inclusion proof (--record N) or a consistency proof (--from S1 [--to S2])."""
    if (record is None) == (size1 is None):
        raise typer.BadParameter("give either --record N, or --from SIZE1 [--to SIZE2]")
    reader = LogReader(_log_dir(log))
    if record is not None:
        _print(inclusion_bundle(reader, record, size=at))
    else:
        assert size1 is not None
        _print(consistency_bundle(reader, size1, size2))


@app.command("check-proof")
def check_proof(
    proof_file: Annotated[Path, typer.Argument(help="JSON from `audit prove`; - for stdin.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The log's public key (PEM or verifier key).")
    ],
) -> None:
    """Check a printed proof against its signed checkpoint(s), from the public key alone."""
    key, name = load_public_key(public_key)
    text = sys.stdin.read() if str(proof_file) == "-" else proof_file.read_text()
    try:
        bundle = json.loads(text)
        if not isinstance(bundle, dict):
            raise ValueError("not a JSON object")
        result = check_bundle(bundle, key, name=name)
    except ValueError as exc:
        _fail("bad-proof-file", f"not a proof file: {exc}")
    except WormError as exc:
        _fail(exc.reason, str(exc))
    _print(result)


def _fail(reason: str, detail: str) -> NoReturn:
    _print({"ok": False, "reason": reason, "detail": detail})
    Console(stderr=True).print(f"[bold red]proof FAILED[/] [{escape(reason)}] {escape(detail)}")
    raise typer.Exit(1)
