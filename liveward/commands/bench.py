"""`liveward bench`: benchmarks printing ratios against baselines measured in the same run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Annotated

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
        "measurement",
        "events/s",
        "vs raw confluent-kafka",
        "vs Java ProducerPerformance",
        title=f"backbone: {events:,} events of ~{result.record_bytes} B, 1 broker, acks=all",
    )

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


@app.command()
def tokens(
    count: int = typer.Option(5_000, help="Tokens signed and verified in process."),
    rate: int = typer.Option(100, help="Offered POST /v1/tokens rate, requests/s."),
    seconds: float = typer.Option(10.0, help="How long to offer that rate."),
) -> None:
    """Token issue/verify next to raw Ed25519, and HTTP issue latency at a fixed rate."""
    import tempfile
    from pathlib import Path

    from bench.tokens import measure_crypto, measure_http_issue
    from infra.live_system import live_system, with_demo_geo

    console = Console()
    crypto = measure_crypto(count)
    table = Table(
        "operation",
        "per second",
        "raw Ed25519 per second",
        "ratio",
        title=f"tokens in process ({count:,} each, {crypto.token_bytes} B tokens)",
    )
    table.add_row(
        "issue (claims → signed JWT)",
        f"{crypto.issue_per_s:,.0f}",
        f"{crypto.raw_sign_per_s:,.0f}",
        f"{crypto.issue_per_s / crypto.raw_sign_per_s:.2f}x",
    )
    table.add_row(
        "verify (JWT → checked claims)",
        f"{crypto.verify_per_s:,.0f}",
        f"{crypto.raw_verify_per_s:,.0f}",
        f"{crypto.verify_per_s / crypto.raw_verify_per_s:.2f}x",
    )
    console.print(table)

    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="liveward-bench-") as scratch:
        settings = with_demo_geo(base, Path(scratch) / "geo")
        with (
            console.status(f"POST /v1/tokens at {rate}/s for {seconds:.0f} s"),
            live_system(settings, auth_regions=(settings.region,), worker=False) as system,
        ):
            figures = measure_http_issue(
                system.of("auth")[0].url,
                admin_key=settings.auth.admin_api_key.get_secret_value(),
                app_key=settings.auth.app_api_key.get_secret_value(),
                rate_per_s=rate,
                seconds=seconds,
            )
    latency = Table(
        "offered rate",
        "requests",
        "p50",
        "p99",
        "max",
        "errors",
        title="HTTP token issue (TokenIssued confirmed by Kafka before the answer)",
    )
    latency.add_row(
        f"{figures.rate_per_s}/s",
        str(figures.requests),
        f"{figures.p50_ms:.1f} ms",
        f"{figures.p99_ms:.1f} ms",
        f"{figures.max_ms:.1f} ms",
        str(figures.errors),
    )
    console.print(latency)


@app.command("license")
def license_(
    rate: Annotated[
        list[int] | None,
        typer.Option(
            "--rate", help="An offered rate, requests/s (repeatable; default 200, 500, 1000)."
        ),
    ] = None,
    seconds: float = typer.Option(10.0, help="How long each rate is offered."),
    players: int = typer.Option(500, help="Players in the warm mix (each reuses its token)."),
    concurrency: int = typer.Option(32, help="Clients of the closed-loop (saturation) run."),
    crypto_count: int = typer.Option(5_000, help="Operations per crypto baseline figure."),
    kafka_port: int = typer.Option(9792, help="The bench's own broker (and port + 1)."),
) -> None:
    """ClearKey license latency at fixed rates and at saturation, next to the crypto alone.

    On a broker of its own, started fresh in a scratch directory: a development broker
    carrying gigabytes of earlier runs' licences (segment loading, the log cleaner)
    measured its own history, not the service.
    """
    import tempfile
    from pathlib import Path

    from bench.license import run_license_bench

    rates = rate or [200, 500, 1000]
    from infra.live_system import live_system, with_demo_geo

    console = Console(width=180)  # the latency table has many columns
    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="liveward-bench-") as scratch:
        base = base.model_copy(
            update={
                "state_dir": Path(scratch) / "state",
                "kafka": base.kafka.model_copy(
                    update={"port": kafka_port, "controller_port": kafka_port + 1}
                ),
            }
        )
        settings = with_demo_geo(base, Path(scratch) / "geo")
        # The bench is the players' proxy: it names each player in X-Forwarded-For.
        settings = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"trusted_proxies": ("127.0.0.1/32",)})}
        )
        region = settings.region
        with (
            console.status("starting auth and license services"),
            live_system(
                settings, auth_regions=(region,), license_regions=(region,), worker=False
            ) as system,
        ):
            license_service = system.of("license")[0]
            pid = license_service.process.pid()
            if pid is None:
                raise typer.Exit(1)
            console.print(f"offering {rates} requests/s for {seconds:.0f} s each, then saturating")
            bench = run_license_bench(
                settings,
                (settings.services.host, settings.services.license_port),
                pid,
                rates=rates,
                seconds=seconds,
                players=players,
                concurrency=concurrency,
                crypto_count=crypto_count,
            )
    crypto = bench.crypto
    baseline = Table("operation", "µs", "per second", title="crypto alone (same run, one core)")
    for name, us in (
        ("HKDF: one period's content key + key id", crypto.derive_us),
        ("token verify (TokenVerifier: Ed25519 + claims)", crypto.verify_us),
        ("raw Ed25519 verify", crypto.raw_verify_us),
        ("a cold license: 2 periods derived + 1 verify", crypto.license_us),
    ):
        baseline.add_row(name, f"{us:.1f}", f"{1e6 / us:,.0f}")
    console.print(baseline)
    latency = Table(
        "mix",
        "offered",
        "requests",
        "p50",
        "p99",
        "p999",
        "max",
        "driver lag p99",
        "answered/s",
        "server p99 ≤: all / checks / Kafka",
        "server CPU/req",
        "vs crypto",
        "load",
        "errors",
        title="POST /v1/license/clearkey (LicenseIssued confirmed by Kafka before each grant)",
    )
    for run in [*bench.runs, *bench.saturated]:
        figures = run.figures
        offered = (
            f"{figures.offered_per_s:,.0f}/s"
            if figures.offered_per_s is not None
            else f"closed, {bench.concurrency} clients"
        )
        errors = ", ".join(f"{k}: {v}" for k, v in figures.failures.items()) or "0"
        latency.add_row(
            run.mix,
            offered,
            f"{figures.requests:,}",
            f"{figures.p50_ms:.1f} ms",
            f"{figures.p99_ms:.1f} ms",
            f"{figures.p999_ms:.1f} ms",
            f"{figures.max_ms:.1f} ms",
            "-" if figures.send_lag_p99_ms is None else f"{figures.send_lag_p99_ms:.1f} ms",
            f"{figures.answered_per_s:,.0f}",
            " / ".join(
                "-" if run.server_p99_ms[name] is None else f"{run.server_p99_ms[name]:g}"
                for name in ("route", "decision", "kafka")
            )
            + " ms",
            f"{run.server_cpu_us:.0f} µs",
            f"{run.server_cpu_us / crypto.license_us:.1f}x",
            f"{run.load_1m:.1f}",
            errors,
        )
    console.print(latency)
    console.print(
        "latency: from each request's scheduled send time (open loop) or its send (closed "
        "loop), at the driver, which shares the two cores with the service and Kafka\n"
        "driver lag: how late the driver sent a request after its scheduled time (its own "
        "event loop busy or descheduled), already inside the latency\n"
        "server p99 ≤: bucket bounds of the license process's own histograms: the whole "
        "route / the checks / the wait for Kafka to take the license record\n"
        "vs crypto: the license process's CPU per request over the crypto of a cold license "
        "alone; load: the machine's 1-minute load average after the run"
    )


@app.command()
def telemetry(
    samples: int = typer.Option(200_000, help="Samples sent in batches."),
    batch_size: int = typer.Option(500, help="Samples per batched request."),
    singles: int = typer.Option(5_000, help="Single-sample requests (JSON, and again CMCD)."),
    connections: int = typer.Option(8, help="Concurrent keep-alive connections."),
    port: int = typer.Option(18_183, help="Port of the bridge the bench starts."),
    workers: int = typer.Option(2, help="Bridge serving processes (one per core)."),
) -> None:
    """Bridge samples/s (batched, single JSON, single CMCD) next to a raw producer."""
    from bench.telemetry import run_telemetry_bench

    settings = load_settings()
    console = Console()
    with _kafka(settings), console.status("offering telemetry to a bridge process"):
        result = run_telemetry_bench(
            settings,
            samples=samples,
            batch_size=batch_size,
            singles=singles,
            connections=connections,
            port=port,
            workers=workers,
        )
    table = Table(
        "measurement",
        "requests",
        "samples/s",
        "vs raw confluent-kafka",
        "samples per bridge CPU-second",
        title=(
            f"telemetry bridge ({workers} worker process(es)) -> Kafka (1 broker, acks=all), "
            f"{connections} connections, load {os.getloadavg()[0]:.1f} after"
        ),
    )
    raw = result.raw.per_second
    for run in (result.batched, result.single_json, result.single_cmcd):
        table.add_row(
            run.figure.name,
            f"{run.requests:,}",
            f"{run.figure.per_second:,.0f}",
            f"{run.figure.per_second / raw:.2f}x" if raw else "-",
            f"{run.per_cpu_second:,.0f}",
        )
    table.add_row(result.raw.name, "-", f"{raw:,.0f}", "1.00x", "-")
    console.print(table)


@app.command()
def aggregation(
    events: int = typer.Option(300_000, help="Samples for the throughput measurement."),
    kafka_port: int = typer.Option(9692, help="The bench's own broker (and port + 1)."),
    window_ms: int = typer.Option(1_000, help="QoE window of the bench worker."),
    lateness_ms: int = typer.Option(1_000, help="Allowed lateness of the bench worker."),
    rate: int = typer.Option(2_000, help="Samples/s offered during the latency run."),
    seconds: float = typer.Option(15.0, help="How long the latency run offers samples."),
) -> None:
    """QoE aggregation per Faust worker next to raw consume+decode; POST-to-row latency."""
    import tempfile
    from pathlib import Path

    from bench.aggregation import median_ms, percentile_ms, run_aggregation_bench

    console = Console()
    with (
        tempfile.TemporaryDirectory(prefix="liveward-bench-aggregation-") as scratch,
        console.status(f"own broker on {kafka_port}, {events:,} samples, then the latency run"),
    ):
        result = run_aggregation_bench(
            events=events,
            kafka_port=kafka_port,
            window_ms=window_ms,
            lateness_ms=lateness_ms,
            latency_rate=rate,
            latency_seconds=seconds,
            state_dir=Path(scratch),
        )
    table = Table(
        "measurement",
        "samples/s",
        "vs raw consume+decode",
        title=f"QoE aggregation: {events:,} samples in {result.records:,} block records, "
        f"1 broker, 1 Faust worker, load {os.getloadavg()[0]:.1f}",
    )
    table.add_row(
        "Faust worker: batch partials + per-region windows",
        f"{result.worker_per_s:,.0f}",
        f"{result.worker_per_s / result.raw_per_s:.2f}x" if result.raw_per_s else "-",
    )
    bare = result.bare_faust_per_s
    table.add_row(
        "Faust agent doing nothing but take_events (ceiling)",
        "unavailable" if bare is None else f"{bare:,.0f}",
        "-" if bare is None else f"{bare / result.raw_per_s:.2f}x",
    )
    table.add_row("raw confluent-kafka consume + Avro decode", f"{result.raw_per_s:,.0f}", "1.00x")
    console.print(table)
    latencies = result.latencies_ms
    latency = Table(
        "windows",
        "window end → row in ClickHouse p50",
        "p90",
        "max",
        "of which lateness",
        title=f"end-to-end at {result.latency_rate:,} samples/s "
        f"({result.window_ms} ms windows, POSTed to a bridge, embedded ClickHouse)",
    )
    latency.add_row(
        str(len(latencies)),
        f"{median_ms(latencies):,.0f} ms",
        f"{percentile_ms(latencies, 0.9):,.0f} ms",
        f"{max(latencies, default=float('nan')):,.0f} ms",
        f"{result.lateness_ms:,} ms",
    )
    console.print(latency)
