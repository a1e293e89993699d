"""`liveward bench`: benchmarks printing ratios against baselines measured in the same run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.table import Table

from liveward.settings import Settings, load_settings

app = typer.Typer(help="Benchmarks (ratios against same-run baselines).", no_args_is_help=True)


@contextlib.contextmanager
def _kafka(settings: Settings) -> Iterator[None]:
    """Use the running broker, or start one for the bench and stop it afterwards."""
    from infra.kafka import KafkaCluster
    from infra.processes import port_open

    if port_open(settings.kafka.host, settings.kafka.port):
        yield
        return
    cluster = KafkaCluster(settings)
    cluster.start()
    try:
        yield
    finally:
        cluster.stop()


@app.command()
def backbone(
    events: int = typer.Option(200_000, help="Events per measurement."),
) -> None:
    """Avro events through codec + producer and back, next to raw and Java producers."""
    from bench.backbone import run_backbone_bench

    settings = load_settings()
    console = Console()
    with _kafka(settings), console.status(f"producing and consuming {events:,} events, 5 ways"):
        result = run_backbone_bench(settings, events)
    table = Table(
        "measurement", "events/s", "vs raw confluent-kafka", "vs Java ProducerPerformance",
        title=f"backbone: {events:,} events of ~{result.record_bytes} B, 1 broker, acks=all",
    )  # fmt: skip

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    for figure, raw, java in (
        (result.liveward_produce, result.raw_produce, result.java_produce),
        (result.raw_produce, None, result.java_produce),
        (result.java_produce, None, None),
        (result.liveward_consume, result.raw_consume, None),
        (result.raw_consume, None, None),
    ):
        if figure is None:
            table.add_row("Kafka ProducerPerformance (Java)", "unavailable", "-", "-")
            continue
        table.add_row(
            figure.name,
            f"{figure.per_second:,.0f}",
            ratio(result.ratio(figure, raw)),
            ratio(result.ratio(figure, java)),
        )
    console.print(table)
