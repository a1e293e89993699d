"""`liveward run`: the whole system, live — regions, players, keys, licenses, QoE, failover."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from liveward.settings import Settings, load_settings

SETTLE_TIMEOUT_S = 60.0
LOCAL_VIEWER_POLICY = Path(str(files("services.access") / "policies" / "local-viewer.toml"))
AVAILABILITY_FLOOR = 0.99
MOVE_BOUND_S = 10.0


@dataclass(slots=True)
class RunState:
    """What the display shows, written by the watcher, the licence viewers and the sinks."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)
    steering: list[str] = field(default_factory=list)
    pathway_sessions: dict[str, dict[str, float]] = field(default_factory=dict)
    qoe: dict[str, tuple[int, float, float, float]] = field(default_factory=dict)
    decisions: deque[str] = field(default_factory=lambda: deque(maxlen=4))
    # region → when the control plane decided to move players away from it (each time)
    failover_away: dict[str, list[float]] = field(default_factory=dict)
    # region → when the control plane moved players back to it ("recovered" decisions)
    failed_back: dict[str, list[float]] = field(default_factory=dict)
    rotations: int = 0
    period: tuple[int, str, int] | None = None  # number, epoch, end ms
    licenses_granted: int = 0
    licenses_refused: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    killed: tuple[str, float] | None = None
    undecodable: int = 0  # records the display could not read (the worker dead-letters them)

    def players_now(self, pathway: str, now: float) -> int:
        return sum(1 for seen in self.pathway_sessions.get(pathway, {}).values() if now - seen < 3)


def run(
    duration: float = typer.Option(60.0, help="Seconds of live event."),
    players: int = typer.Option(200, help="Simulated players."),
    kill_region: bool = typer.Option(
        True, help="Kill every process of the first region halfway through."
    ),
    keep_stack: bool = typer.Option(False, help="Leave Kafka/ClickHouse running afterwards."),
    web_console: bool = typer.Option(
        True,
        "--console/--no-console",
        help="Serve the web console (services.console_port, default http://127.0.0.1:8080).",
    ),
    media: str = typer.Option(
        "ffmpeg",
        help="ffmpeg: real encrypted H.264/AAC HLS a browser plays (the console's player); "
        "synthetic: generated stand-in segments (lighter, for big simulated fleets).",
    ),
) -> None:
    """Bring everything up, play a live event to simulated players, lose a region halfway,
    show it all live, and end with a checked summary (exit 1 if a check fails)."""
    if media not in ("ffmpeg", "synthetic"):
        raise typer.BadParameter("--media is ffmpeg or synthetic")
    console = Console()
    base = load_settings()
    base = base.model_copy(update={"media": base.media.model_copy(update={"source": media})})
    ok = _run(base, console, duration, players, kill_region, keep_stack, web_console)
    if not ok:
        raise typer.Exit(1)


def _run(
    base: Settings,
    console: Console,
    duration: float,
    player_count: int,
    kill_region: bool,
    keep_stack: bool,
    web_console: bool = True,
) -> bool:
    from infra.live_system import live_system, with_demo_geo
    from infra.stack import Stack
    from services.console.errors import ConsoleNotStarted
    from services.console.server import ConsoleHandle, start_console
    from services.media.layout import DEFAULT_CONTENT
    from services.players.fleet import FleetConfig, entry_urls, run_fleet_blocking
    from sinks.analytics import AnalyticsSink
    from sinks.worm.sink import LicenseLogSink

    # A person watches the console's player from this machine: unless a policy was given,
    # the shipped one with loopback/private addresses allowed (see its header).
    settings = with_demo_geo(
        base, base.state_dir / "demo-geo", base.auth.policy_file or LOCAL_VIEWER_POLICY
    )
    # Viewers reach the services through a local edge that reports their address.
    settings = settings.model_copy(
        update={
            "auth": settings.auth.model_copy(update={"trusted_proxies": ("127.0.0.1/32",)}),
            # Short QoE windows, so a one-minute event shows several of them.
            "analytics": settings.analytics.model_copy(
                update={"window_ms": 5_000, "lateness_ms": 2_000}
            ),
        }
    )
    regions = tuple(settings.regions[:2])
    stack = Stack(settings)
    stack_was_up = bool(stack.status()) and all(row.healthy for row in stack.status())
    state = RunState()
    console.print("starting Kafka, ClickHouse, the stream processors and the services ...")
    with live_system(
        settings,
        auth_regions=regions[:1],
        license_regions=regions,
        media_regions=regions,
        steering=True,
        bridge=True,
        key_rotation=(DEFAULT_CONTENT,),
        keep_stack=keep_stack,
    ) as system:
        for service in system.services:
            console.print(f"[green]✔[/] {service.name} ({service.region}) {service.url}")
        console.print(
            f"[green]✔[/] regions {', '.join(regions)}: ingest, hot-hot packagers, "
            "origin, CDN edges"
        )
        web: ConsoleHandle | None = None
        if web_console:
            try:
                web = start_console(settings, system)
                console.print(f"[green]✔[/] console {web.url}  [bold]open it in a browser[/]")
            except ConsoleNotStarted as exc:
                console.print(f"[yellow]![/] no web console: {exc}")
        analytics = AnalyticsSink(settings)
        license_log = LicenseLogSink(settings)
        analytics.start()
        license_log.start()
        watcher = _Watcher(settings, state)
        watcher.start()
        viewers = _LicenseViewers(settings, system, state, DEFAULT_CONTENT)
        bridge = system.of("bridge")[0].url
        fleet_box: list[object] = []
        # With real (encrypted) media the players check each segment decrypts under the
        # period's key from the license service; one token serves the whole fleet (for an
        # event longer than a token lives, they check the segments' shape instead).
        fleet_token = (
            _fleet_token(settings, system.of("auth")[0].url, DEFAULT_CONTENT)
            if settings.media.source == "ffmpeg" and duration + 60 < settings.auth.token_lifetime_s
            else None
        )
        fleet = threading.Thread(
            target=lambda: fleet_box.append(
                run_fleet_blocking(
                    FleetConfig(
                        entry_urls=entry_urls(settings, DEFAULT_CONTENT),
                        content_id=DEFAULT_CONTENT,
                        count=player_count,
                        duration_s=duration,
                        ramp_s=3.0,
                        bridge_url=f"{bridge}/v1/telemetry",
                        key_token=fleet_token,
                    )
                )
            ),
            daemon=True,
        )
        run_started_ms = int(time.time() * 1000)
        fleet.start()
        viewers.start()
        try:
            with Live(
                _render(state, analytics, duration),
                console=console,
                refresh_per_second=2,
                transient=True,
            ) as live:
                end = time.monotonic() + duration + 5
                while fleet.is_alive() and time.monotonic() < end + 30:
                    elapsed = time.time() - state.started
                    if kill_region and state.killed is None and elapsed > duration / 2:
                        system.media[0].kill()
                        with state.lock:
                            state.killed = (regions[0], time.time())
                    live.update(_render(state, analytics, duration, since_ms=run_started_ms))
                    time.sleep(0.5)
                viewers.stop()
                deadline = time.monotonic() + SETTLE_TIMEOUT_S
                while time.monotonic() < deadline and not _settled(
                    state, analytics, license_log, run_started_ms
                ):
                    live.update(
                        _render(
                            state, analytics, duration, since_ms=run_started_ms, phase="settling"
                        )
                    )
                    time.sleep(0.5)
        finally:
            viewers.stop()
            fleet.join(timeout=60)
            watcher.stop()
            rows = analytics.row_counts(since_ms=run_started_ms)
            analytics.stop()
            license_log.stop()
            if web is not None:
                web.stop()
        result = fleet_box[0] if fleet_box else None
        console.print(_render(state, None, duration, rows=rows, phase="final figures"))
        ok = _summary(console, settings, state, result, rows, license_log)
    if stack_was_up or keep_stack:
        console.print("The stack is still up: `liveward stack status`, `liveward stack down`.")
    return ok


class _Watcher(threading.Thread):
    """Follows what the system derives: steering, decisions, keys, QoE, licences, letters."""

    TOPICS = (
        "control.steering",
        "control.failover",
        "keys.rotations",
        "qoe.aggregates",
        "qoe.telemetry",
        "drm.licenses",
        "liveward.dead-letter",
    )

    def __init__(self, settings: Settings, state: RunState) -> None:
        super().__init__(name="run-watcher", daemon=True)
        self._settings = settings
        self._state = state
        self._stop_flag = threading.Event()

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)

    def run(self) -> None:
        from confluent_kafka import Consumer

        from streams.codec import default_codec
        from streams.consumer import consumer_config
        from streams.errors import StreamsError

        codec = default_codec()
        since_ms = int(self._state.started * 1000) - 5_000
        consumer = Consumer(consumer_config(self._settings, f"liveward-run-{uuid.uuid4().hex}"))
        consumer.subscribe(list(self.TOPICS))
        try:
            while not self._stop_flag.is_set():
                for message in consumer.consume(num_messages=2000, timeout=0.25):
                    if message.error() is not None or not message.value():
                        continue
                    if message.timestamp()[1] < since_ms and message.topic() != "control.steering":
                        continue
                    try:
                        event = codec.decode(message.value() or b"")
                    except StreamsError:
                        # The worker dead-letters it; the display must not die on it.
                        with self._state.lock:
                            self._state.undecodable += 1
                        continue
                    self._apply(message.topic() or "", event)
        finally:
            consumer.close()

    def _apply(self, topic: str, event: object) -> None:
        from streams import events as ev

        state = self._state
        with state.lock:
            if isinstance(event, ev.SteeringState) and event.content_id in (
                "*",
                "match-of-the-day",
            ):
                state.steering = list(event.pathway_priority)
            elif isinstance(event, ev.FailoverDecision):
                clock = time.strftime("%H:%M:%S", time.localtime(event.decided_at / 1000))
                state.decisions.appendleft(
                    f"{clock} {event.from_pathway} → {event.to_pathway} ({event.reason})"
                )
                if event.reason == "recovered":
                    back = event.to_pathway.split(".")[0]
                    state.failed_back.setdefault(back, []).append(event.decided_at / 1000)
                else:
                    region = event.from_pathway.split(".")[0]
                    state.failover_away.setdefault(region, []).append(event.decided_at / 1000)
            elif isinstance(event, ev.KeyRotated):
                state.rotations += 1
                state.period = (event.period, event.epoch_id, event.period_end)
            elif isinstance(event, ev.QoEAggregate) and event.cdn != "*":
                key = f"{event.serving_region}.{event.cdn}"
                state.qoe[key] = (
                    event.sessions,
                    event.rebuffer_ratio,
                    event.bitrate_p50_kbps,
                    event.error_rate,
                )
            elif isinstance(event, ev.QoETelemetryBlock):
                for context in event.contexts:
                    key = f"{context.serving_region}.{context.cdn}"
                    state.pathway_sessions.setdefault(key, {})[context.session_ref] = time.time()
            elif isinstance(event, ev.LicenseIssued):
                if event.decision == ev.LicenseDecision.GRANTED:
                    state.licenses_granted += 1
                else:
                    state.licenses_refused[event.reason] += 1
            elif isinstance(event, ev.DeadLetter):
                state.dead_letters[event.reason_code] += 1


class _LicenseViewers:
    """A few viewers who sign in and fetch ClearKey licences from every region in turn."""

    def __init__(self, settings: Settings, system: object, state: RunState, content: str) -> None:
        self._settings = settings
        self._system = system
        self._state = state
        self._content = content
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        import httpx

        from infra.drills.key_leak import VIEWER_IP, b64url
        from services.keys.keystore import KeyStore
        from streams.meta import now_ms

        system = self._system
        auth = system.of("auth")[0].url  # type: ignore[attr-defined]
        licenses = system.of("license")  # type: ignore[attr-defined]
        admin = self._settings.auth.admin_api_key.get_secret_value()
        app = self._settings.auth.app_api_key.get_secret_value()
        keys = KeyStore(self._settings)
        keys.start()
        keys.wait_ready(30)
        turn = 0
        with httpx.Client(timeout=5.0) as http:
            viewers = []
            for i in range(5):
                viewer_id = f"run-viewer-{uuid.uuid4().hex[:6]}-{i}"
                http.put(
                    f"{auth}/v1/subscribers/{viewer_id}",
                    headers={"Authorization": f"Bearer {admin}"},
                    json={
                        "content_ids": [self._content],
                        "device_classes": ["web"],
                        "max_concurrent_streams": 2,
                        "home_country": "GB",
                    },
                )
                viewers.append(viewer_id)
            tokens: dict[str, str] = {}
            while not self._stop.wait(2.0):
                for viewer_id in viewers:
                    token = tokens.get(viewer_id)
                    if token is None:
                        answer = http.post(
                            f"{auth}/v1/tokens",
                            headers={
                                "Authorization": f"Bearer {app}",
                                "X-Forwarded-For": VIEWER_IP,
                            },
                            json={
                                "viewer_id": viewer_id,
                                "content_id": self._content,
                                "device_id": f"{viewer_id}-web",
                                "device_class": "web",
                            },
                        )
                        if answer.status_code != 200:
                            continue
                        token = tokens[viewer_id] = answer.json()["token"]
                    try:
                        current, upcoming = keys.current_and_next(self._content, now_ms())
                    except Exception:  # no epoch yet: the rotation process is starting
                        break
                    instance = licenses[turn % len(licenses)]
                    turn += 1
                    answer = http.post(
                        f"{instance.url}/v1/license/clearkey",
                        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": VIEWER_IP},
                        json={
                            "kids": [b64url(current.key_id_bytes), b64url(upcoming.key_id_bytes)],
                            "type": "temporary",
                        },
                    )
                    if answer.status_code == 401:
                        tokens.pop(viewer_id, None)  # expired: sign in again next round
        keys.close()


def _fleet_token(settings: Settings, auth_url: str, content_id: str) -> str | None:
    """A playback token for the simulated fleet's key checks (a subscriber of its own,
    issued to this machine's address); None, with the fleet checking shape only, if the
    auth service refuses."""
    import httpx

    admin = settings.auth.admin_api_key.get_secret_value()
    app = settings.auth.app_api_key.get_secret_value()
    viewer_id = f"run-fleet-{uuid.uuid4().hex[:6]}"
    with httpx.Client(timeout=5.0) as http:
        http.put(
            f"{auth_url}/v1/subscribers/{viewer_id}",
            headers={"Authorization": f"Bearer {admin}"},
            json={"content_ids": [content_id], "device_classes": ["web"], "home_country": "GB"},
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            answer = http.post(
                f"{auth_url}/v1/tokens",
                headers={"Authorization": f"Bearer {app}"},
                json={
                    "viewer_id": viewer_id,
                    "content_id": content_id,
                    "device_id": f"{viewer_id}-fleet",
                    "device_class": "web",
                },
            )
            if answer.status_code == 200:
                return str(answer.json()["token"])
            time.sleep(0.5)  # the subscriber is not visible to the auth service yet
    return None


def _settled(state: RunState, analytics: object, license_log: object, since_ms: int) -> bool:
    with state.lock:
        granted = state.licenses_granted
    appended = license_log.stats.appended  # type: ignore[attr-defined]
    rows = analytics.row_counts(since_ms=since_ms)  # type: ignore[attr-defined]
    return bool(appended >= granted and rows.get("qoe_aggregates", 0) > 0)


def _render(
    state: RunState,
    analytics: object | None,
    duration: float,
    *,
    since_ms: int = 0,
    rows: dict[str, int] | None = None,
    phase: str | None = None,
) -> Panel:
    now = time.time()
    elapsed = now - state.started
    if rows is None and analytics is not None and since_ms:
        rows = analytics.row_counts(since_ms=since_ms)  # type: ignore[attr-defined]
    with state.lock:
        paths = Table(
            "pathway",
            "steering rank",
            "players now",
            "QoE sessions",
            "rebuffer",
            "bitrate p50",
            "errors",
            title="regions and pathways",
        )
        known = sorted(set(state.steering) | set(state.pathway_sessions) | set(state.qoe))
        for pathway in known:
            rank = str(state.steering.index(pathway) + 1) if pathway in state.steering else "-"
            sessions, rebuffer, bitrate, errors = state.qoe.get(pathway, (0, 0.0, 0.0, 0.0))
            paths.add_row(
                pathway,
                rank,
                str(state.players_now(pathway, now)),
                str(sessions),
                f"{rebuffer:.1%}",
                f"{bitrate:,.0f} kbps",
                f"{errors:.1%}",
            )
        facts = Table("", "", title="keys, licences, control plane, analytics")
        if state.period is not None:
            number, epoch, end_ms = state.period
            facts.add_row(
                "key period",
                f"{number} (epoch {epoch[:18]}…), next in {max(0.0, end_ms / 1000 - now):.0f} s",
            )
        facts.add_row("key periods announced", str(state.rotations))
        refused = ", ".join(f"{r}: {n}" for r, n in state.licenses_refused.items()) or "none"
        facts.add_row("licences granted / refused", f"{state.licenses_granted} / {refused}")
        if state.killed is not None:
            facts.add_row(
                "killed",
                f"every process of {state.killed[0]} at {state.killed[1] - state.started:.0f} s",
            )
        for line in state.decisions:
            facts.add_row("decision", line)
        for table, count in sorted((rows or {}).items()):
            facts.add_row(f"ClickHouse {table}", f"{count:,} rows")
        letters = ", ".join(f"{r}: {n}" for r, n in state.dead_letters.items()) or "0"
        facts.add_row("dead letters", letters)
        if state.undecodable:
            facts.add_row("records the display could not read", str(state.undecodable))
    title = phase or f"live event: {min(elapsed, duration):.0f}/{duration:.0f} s"
    return Panel(Group(paths, facts), title=f"liveward run — {title}")


def _failed_over(state: RunState, region: str, killed_at: float) -> tuple[bool, str]:
    """Whether the control plane had players away from the killed region, and the figure.

    The first failover decision after the kill is the reaction to it. Without one the
    region may already have been failed over before the kill (an encoder's start-up blip
    reports the source failing) and not yet failed back: that state is right too, and
    the figure says so.
    """
    away = state.failover_away.get(region, [])
    after = [t for t in away if t >= killed_at - 1]
    if after:
        return True, f"{min(after) - killed_at:.1f} s after the kill"
    before = max((t for t in away if t < killed_at - 1), default=None)
    back = max((t for t in state.failed_back.get(region, []) if t < killed_at), default=None)
    if before is not None and (back is None or back < before):
        return True, f"already, {killed_at - before:.0f} s before the kill, and not failed back"
    return False, "-"


def _summary(
    console: Console,
    settings: Settings,
    state: RunState,
    result: object | None,
    rows: dict[str, int],
    license_log: object,
) -> bool:
    from sinks.privacy import scan
    from sinks.worm.audit import verify_log
    from sinks.worm.keys import load_public_key, public_key_path

    checks: list[tuple[str, bool, str]] = []
    if result is not None:
        summary = result.summary()  # type: ignore[attr-defined]
        checks.append(
            (
                "players were served (availability ≥ 99%)",
                summary.availability >= AVAILABILITY_FLOOR,
                f"{summary.availability:.4f}, {summary.stalled_players} stalled",
            )
        )
        if state.killed is not None:
            region, at = state.killed
            survivor = next(r for r in settings.regions[:2] if r != region)
            moved = result.time_to_region(survivor, 0.99, since=at)  # type: ignore[attr-defined]
            checks.append(
                (
                    f"99% of players moved to {survivor} within {MOVE_BOUND_S:g} s",
                    moved is not None and moved < MOVE_BOUND_S,
                    "never" if moved is None else f"{moved:.1f} s",
                )
            )
            checks.append(
                (f"the control plane failed {region} over", *_failed_over(state, region, at))
            )
    else:
        checks.append(("players ran", False, "the fleet did not finish"))
    checks.append(
        ("keys rotated on schedule (periods announced)", state.rotations > 0, str(state.rotations))
    )
    appended = license_log.stats.appended  # type: ignore[attr-defined]
    checks.append(
        (
            "every licence granted is in the tamper-evident log",
            state.licenses_granted > 0 and appended >= state.licenses_granted,
            f"{state.licenses_granted} granted, {appended} logged",
        )
    )
    public_key, _ = load_public_key(public_key_path(settings))
    report = verify_log(license_log.log_dir, public_key)  # type: ignore[attr-defined]
    checks.append(("`liveward audit verify` passes", report.ok, f"{len(report.problems)} problems"))
    checks.append(
        (
            "QoE aggregates and player samples landed in ClickHouse",
            rows.get("qoe_aggregates", 0) > 0 and rows.get("qoe_telemetry_samples", 0) > 0,
            ", ".join(f"{t}: {n:,}" for t, n in sorted(rows.items())),
        )
    )
    from sinks.clickhouse.backends import backend_for

    backend = backend_for(settings)
    try:
        privacy = scan(settings, backend)
    finally:
        backend.close()
    checks.append(
        (
            "no raw identifiers in analytics topics or tables (privacy scan)",
            privacy.clean,
            f"{len(privacy.findings)} findings",
        )
    )
    table = Table("check", "result", "figure", title="summary")
    for text, passed, figure in checks:
        table.add_row(text, "[green]pass[/]" if passed else "[red]FAIL[/]", figure)
    console.print(table)
    return all(passed for _, passed, _ in checks)
