"""`liveward run`: the whole system, live — stack, topics, tables, worker, sink and a live event."""

from __future__ import annotations

import gc
import secrets
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from liveward.settings import Settings, load_settings

SETTLE_TIMEOUT_S = 60.0


@dataclass(slots=True)
class RunCounters:
    """What the display shows; written by the producer loop and the watcher thread."""

    produced: Counter[str] = field(default_factory=Counter)
    malformed_sent: int = 0
    revocation_list: set[str] = field(default_factory=set)
    revoked_subjects: set[str] = field(default_factory=set)
    dead_letters: Counter[str] = field(default_factory=Counter)
    clickhouse_rows: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    live_seconds: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def run(
    duration: float = typer.Option(30.0, help="Seconds of live event to run."),
    rate: int = typer.Option(1_000, help="QoE samples per second."),
    keep_stack: bool = typer.Option(False, help="Leave Kafka/ClickHouse running afterwards."),
) -> None:
    """Bring the system up, run a live event through it, show it, and end with a summary."""
    settings = load_settings()
    console = Console()
    ok = _run(settings, console, duration=duration, rate=rate, keep_stack=keep_stack)
    if not ok:
        raise typer.Exit(1)


def _run(
    settings: Settings, console: Console, *, duration: float, rate: int, keep_stack: bool
) -> bool:
    from infra.processes import ManagedProcess
    from infra.stack import Stack
    from liveward.live_event import LiveEventPlan, LiveEventSimulator
    from sinks.analytics import AnalyticsSink
    from streams.catalog import CATALOG
    from streams.meta import now_ms
    from streams.producer import EventProducer
    from streams.topics import apply_topics

    stack = Stack(settings)
    with console.status("starting Kafka and ClickHouse"):
        already_up = bool(stack.status()) and all(row.healthy for row in stack.status())
        rows = stack.up()
    for row in rows:
        console.print(f"[green]✔[/] {row.service} at {row.address} (pid {row.pid or '-'})")
    report = apply_topics(settings)
    console.print(
        f"[green]✔[/] topics: {len(report.created)} created, {len(report.unchanged)} unchanged"
        + (f", [yellow]{len(report.drifted)} drifted[/]" if report.drifts else "")
    )
    worker = ManagedProcess(
        name="worker",
        pid_file=settings.state_dir / "pids" / "worker.pid",
        log_file=settings.log_dir / "worker.log",
    )
    if not worker.is_running():
        worker.start([sys.executable, "-m", "liveward.cli", "worker"], env=settings.as_env())
    console.print(f"[green]✔[/] stream processors (Faust worker, pid {worker.pid()})")
    sink = AnalyticsSink(settings)
    sink.start()
    console.print(f"[green]✔[/] ClickHouse sink ({settings.clickhouse.backend}) running")

    counters = RunCounters()
    run_started_ms = now_ms()
    watcher = _Watcher(settings, counters)
    watcher.start()
    producer = EventProducer(settings)
    simulator = LiveEventSimulator(
        LiveEventPlan(regions=settings.regions, samples_per_tick=rate),
        seed=int(time.time()),
        pseudonym_key=secrets.token_bytes(32),
    )
    try:
        with Live(
            _render(counters, duration), console=console, refresh_per_second=4, transient=True
        ) as live:
            counters.started = time.monotonic()
            next_tick = time.monotonic()
            end = next_tick + duration
            while time.monotonic() < end:
                tick = simulator.tick(now_ms())
                for topic, events in tick.events.items():
                    producer.send_all(topic, events)
                    with counters.lock:
                        counters.produced[topic] += len(events)
                        if topic == "auth.revocations":
                            spec = CATALOG[topic]
                            counters.revoked_subjects.update(
                                spec.key_of(e).decode() for e in events
                            )
                for topic, raw in tick.malformed:
                    producer.send_raw(topic, [(b"broken", raw)])
                    with counters.lock:
                        counters.malformed_sent += 1
                counters.clickhouse_rows = sink.row_counts(since_ms=run_started_ms)
                live.update(_render(counters, duration))
                next_tick += 1.0
                time.sleep(max(0.0, next_tick - time.monotonic()))
            counters.live_seconds = time.monotonic() - counters.started
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            while time.monotonic() < deadline and not _settled(counters):
                counters.clickhouse_rows = sink.row_counts(since_ms=run_started_ms)
                live.update(_render(counters, duration, settling=True))
                time.sleep(0.5)
            counters.clickhouse_rows = sink.row_counts(since_ms=run_started_ms)
    finally:
        producer.close()
        watcher.stop()
        sink.stop()
        worker.stop()
        # Free the Kafka clients before the broker goes, or they complain about it on stderr.
        del producer, sink
        gc.collect()
        if not keep_stack and not already_up:
            stack.down()
    return _summary(console, counters, keep_stack or already_up)


class _Watcher(threading.Thread):
    """Follows the derived topics (revocation list, dead letters) to show what the agents did."""

    def __init__(self, settings: Settings, counters: RunCounters) -> None:
        super().__init__(name="run-watcher", daemon=True)
        self._settings = settings
        self._counters = counters
        self._stop_flag = threading.Event()

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)

    def run(self) -> None:
        from confluent_kafka import Consumer

        from streams.codec import default_codec
        from streams.consumer import consumer_config
        from streams.events import DeadLetter
        from streams.meta import new_event_id, now_ms

        codec = default_codec()
        consumer = Consumer(consumer_config(self._settings, f"liveward-run-watch-{new_event_id()}"))
        # Only what this run caused: the topics may hold earlier runs' records.
        since_ms = now_ms() - int((time.monotonic() - self._counters.started) * 1000)
        consumer.subscribe(["auth.revocation-list", "liveward.dead-letter"])
        try:
            while not self._stop_flag.is_set():
                for message in consumer.consume(num_messages=500, timeout=0.25):
                    if message.error() is not None or message.timestamp()[1] < since_ms:
                        continue
                    key = (message.key() or b"").decode()
                    with self._counters.lock:
                        if message.topic() == "auth.revocation-list":
                            if message.value() is None:
                                self._counters.revocation_list.discard(key)
                            else:
                                self._counters.revocation_list.add(key)
                        else:
                            letter = codec.decode_as(message.value() or b"", DeadLetter)
                            self._counters.dead_letters[letter.reason_code] += 1
        finally:
            consumer.close()


def _settled(counters: RunCounters) -> bool:
    with counters.lock:
        telemetry_ok = (
            counters.clickhouse_rows.get("qoe_telemetry_samples", 0)
            >= counters.produced["qoe.telemetry"]
        )
        health_ok = (
            counters.clickhouse_rows.get("ingest_health_beats", 0)
            >= counters.produced["ingest.health"]
        )
        dead_ok = sum(counters.dead_letters.values()) >= counters.malformed_sent
        revoked_ok = counters.revoked_subjects <= counters.revocation_list
    return telemetry_ok and health_ok and dead_ok and revoked_ok


def _render(
    counters: RunCounters, duration: float, *, settling: bool = False, final: bool = False
) -> Panel:
    elapsed = counters.live_seconds or (time.monotonic() - counters.started)
    with counters.lock:
        produced = Table(
            "topic", "events in Kafka", "events/s", title="produced (acks=all, confirmed)"
        )
        for topic, count in sorted(counters.produced.items()):
            produced.add_row(topic, f"{count:,}", f"{count / max(elapsed, 1e-3):,.0f}")
        produced.add_row("[red]malformed (on purpose)[/]", f"{counters.malformed_sent:,}", "")
        derived = Table("derived state", "value", title="what the processors and sinks made of it")
        derived.add_row(
            "revocation list entries (Faust agent)", f"{len(counters.revocation_list):,}"
        )
        derived.add_row("subjects revoked by the operator", f"{len(counters.revoked_subjects):,}")
        derived.add_row(
            "dead letters",
            ", ".join(f"{reason}: {n}" for reason, n in counters.dead_letters.items()) or "0",
        )
        for table, rows in sorted(counters.clickhouse_rows.items()):
            derived.add_row(f"ClickHouse {table} rows", f"{rows:,}")
    phase = (
        "final figures"
        if final
        else (
            "settling: waiting for processors and sinks to catch up"
            if settling
            else (f"live event: {min(elapsed, duration):.0f}/{duration:.0f} s")
        )
    )
    return Panel(Group(produced, derived), title=f"liveward run — {phase}")


def _summary(console: Console, counters: RunCounters, stack_left_up: bool) -> bool:
    with counters.lock:
        checks = [
            (
                "every QoE sample accepted is in ClickHouse, once",
                counters.clickhouse_rows.get("qoe_telemetry_samples", 0)
                == counters.produced["qoe.telemetry"],
            ),
            (
                "every ingest heartbeat is in ClickHouse, once",
                counters.clickhouse_rows.get("ingest_health_beats", 0)
                == counters.produced["ingest.health"],
            ),
            (
                "every malformed record reached the dead-letter topic",
                sum(counters.dead_letters.values()) == counters.malformed_sent,
            ),
            (
                "every revocation request is on the revocation list",
                counters.revoked_subjects <= counters.revocation_list,
            ),
        ]
    table = Table("check", "result", title="summary")
    for text, passed in checks:
        table.add_row(text, "[green]pass[/]" if passed else "[red]FAIL[/]")
    console.print(_render(counters, 0.0, final=True))
    console.print(table)
    if stack_left_up:
        console.print("The stack is still up: `liveward stack status`, `liveward stack down`.")
    return all(passed for _, passed in checks)
