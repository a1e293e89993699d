"""`liveward geo`: check an address against the access policy, verify geo DBs, measure accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from liveward.settings import AuthSettings, load_settings
from services.access.accuracy import load_labelled, run_accuracy
from services.access.geo import GeoFacts, GeoResolver
from services.access.policy import AccessRequest, PolicyBook, decide_access

app = typer.Typer(
    help="Geo/IP/device access policy: check an address, verify the databases, measure accuracy.",
    no_args_is_help=True,
)

CityDb = Annotated[
    Path | None,
    typer.Option("--geo-city-db", help="GeoIP2/GeoLite2 City or Country DB. Default: settings."),
]
AsnDb = Annotated[
    Path | None,
    typer.Option("--geo-asn-db", help="GeoLite2-ASN or GeoIP2-ISP DB. Default: settings."),
]
AnonymousDb = Annotated[
    Path | None,
    typer.Option("--geo-anonymous-db", help="GeoIP2-Anonymous-IP DB. Default: settings."),
]
PolicyFile = Annotated[
    Path | None,
    typer.Option("--policy-file", help="Policy TOML. Default: settings, else the shipped one."),
]


def _auth(
    city_db: Path | None, asn_db: Path | None, anonymous_db: Path | None, policy_file: Path | None
) -> AuthSettings:
    """The settings' auth section with the command line's paths taking precedence."""
    auth = load_settings().auth
    overrides = {
        "geo_city_db": city_db,
        "geo_asn_db": asn_db,
        "geo_anonymous_db": anonymous_db,
        "policy_file": policy_file,
    }
    return auth.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _facts_table(facts: GeoFacts) -> Table:
    table = Table.grid(padding=(0, 2))
    rows = {
        "ip": facts.ip,
        "network": facts.network,
        "special": facts.special,
        "country": facts.country,
        "subdivisions": "/".join(facts.subdivisions) or None,
        "asn": None if facts.asn is None else f"AS{facts.asn} {facts.asn_organization or ''}",
        "anonymizers": ", ".join(sorted(facts.anonymizers)) or None,
    }
    for name, value in rows.items():
        table.add_row(f"  {name}", "-" if value is None else escape(value.strip()))
    return table


@app.command()
def check(
    ip: Annotated[str, typer.Argument(help="The client address (IPv4 or IPv6).")],
    content: Annotated[
        str | None, typer.Option(help="Content id. Default: the policy's [default] rules.")
    ] = None,
    device_class: Annotated[str, typer.Option(help="The player's device class.")] = "web",
    active_streams: Annotated[int, typer.Option(min=0, help="Streams the viewer already has.")] = 0,
    home_country: Annotated[
        str | None, typer.Option(help="The subscriber's home country (portability).")
    ] = None,
    token_ip: Annotated[
        str | None,
        typer.Option(
            help="Address the token was issued to: check the IP binding as a license would."
        ),
    ] = None,
    geo_city_db: CityDb = None,
    geo_asn_db: AsnDb = None,
    geo_anonymous_db: AnonymousDb = None,
    policy_file: PolicyFile = None,
) -> None:
    """Print the decision for IP, its reason code and the facts behind it (exit 1 if denied)."""
    auth = _auth(geo_city_db, geo_asn_db, geo_anonymous_db, policy_file)
    book = PolicyBook.load(auth.policy_file)
    policy = book.default if content is None else book.for_content(content)
    with GeoResolver.from_settings(auth) as resolver:
        facts = resolver.resolve(ip)
        token = resolver.resolve(token_ip) if token_ip is not None else None
        databases = resolver.databases
    request = AccessRequest(
        content_id=content or "",
        device_class=device_class,
        facts=facts,
        active_streams=active_streams,
        home_country=home_country,
        token_network=token.network if token else None,
        token_asn=token.asn if token else None,
        token_country=token.country if token else None,
    )
    decision = decide_access(request, policy)
    console = Console()
    verdict = "[green]allowed[/]" if decision.allowed else "[red]denied[/]"
    console.print(f"decision  {verdict}")
    console.print(f"reason    {decision.reason}")
    console.print(f"detail    {escape(decision.detail)}")
    console.print(f"policy    {escape(decision.policy)} ({escape(book.source)})")
    console.print("facts")
    console.print(_facts_table(facts))
    console.print("databases")
    for role in ("city", "asn", "anonymous"):
        console.print(f"  {role:<10}{escape(databases.get(role, 'not configured'))}")
    if not decision.allowed:
        raise typer.Exit(1)


@app.command()
def verify(
    geo_city_db: CityDb = None,
    geo_asn_db: AsnDb = None,
    geo_anonymous_db: AnonymousDb = None,
) -> None:
    """Decode every record of every configured database (run after each download)."""
    auth = _auth(geo_city_db, geo_asn_db, geo_anonymous_db, None)
    with GeoResolver.from_settings(auth) as resolver:
        counts = resolver.verify()
        databases = resolver.databases
    console = Console()
    if not counts:
        console.print("no geo database configured")
        raise typer.Exit(1)
    for role, networks in counts.items():
        console.print(f"[green]ok[/] {role:<10}{networks:>9} networks  {escape(databases[role])}")


@app.command()
def accuracy(
    file: Annotated[
        Path | None, typer.Argument(help="Labelled CSV. Default: the shipped labelled set.")
    ] = None,
    geo_city_db: CityDb = None,
    geo_asn_db: AsnDb = None,
    geo_anonymous_db: AnonymousDb = None,
    policy_file: PolicyFile = None,
) -> None:
    """Run a labelled set through resolver and policy; errors by category (exit 1 if any)."""
    auth = _auth(geo_city_db, geo_asn_db, geo_anonymous_db, policy_file)
    cases = load_labelled(file)
    book = PolicyBook.load(auth.policy_file)
    with GeoResolver.from_settings(auth) as resolver:
        report = run_accuracy(cases, resolver, book)
        databases = resolver.databases
    console = Console()
    for role in ("city", "asn", "anonymous"):
        if role not in databases:
            console.print(f"[yellow]note[/] no {role} database configured (--geo-{role}-db)")
    table = Table("category", "cases", "errors", "accuracy")
    for score in report.scores:
        share = 1 - score.errors / score.cases
        table.add_row(escape(score.category), str(score.cases), str(score.errors), f"{share:.1%}")
    total = 1 - report.errors / report.cases if report.cases else 1.0
    table.add_row("total", str(report.cases), str(report.errors), f"{total:.1%}", style="bold")
    console.print(table)
    for miss in report.misses:
        case = miss.case
        console.print(
            escape(
                f"line {case.line}: {case.ip} {case.content} {case.device_class}: expected "
                f"{case.expected_reason}, got {miss.actual_reason} ({miss.detail})"
            )
        )
    if report.errors:
        raise typer.Exit(1)
