"""The telemetry bridge's speed: samples/s over HTTP into Kafka, next to a raw producer.

A real `liveward serve bridge` process is started on its own topic; a small asyncio
HTTP/1.1 client with pre-built requests keeps several connections busy, so the client
costs little of the two cores the bridge and the broker share. Every request must be
answered 202 with every sample accepted (that is: confirmed by Kafka). The baseline is
a bare confluent-kafka producer sending the records the bridge writes for the same
requests (a `QoETelemetryBlock` per request and partition), pre-encoded, in the same run
with the bridge's producer settings; every figure is in samples/s.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson

from bench.backbone import Figure, _fresh_topic, raw_produce
from infra.live_system import with_demo_geo
from infra.processes import ManagedProcess, wait_until
from liveward.settings import Settings
from services.bridge.epochs import EpochKey
from services.bridge.pseudonyms import EpochPseudonyms
from services.bridge.records import BlockEncoder, Provenance
from services.bridge.samples import PlayerSample
from services.bridge.server import PRODUCER_TUNING
from services.bridge.settings import BridgeSettings, bridge_env
from streams.catalog import CATALOG
from streams.codec import default_codec
from streams.meta import now_ms

SESSIONS_PER_BATCH = 100
# Single-sample requests are latency-bound per connection (each waits for Kafka, and the
# producer lingers 5 ms to batch): many players send at once, so offer them over more.
SINGLE_CONNECTIONS_FACTOR = 8


@dataclass(frozen=True, slots=True)
class BridgeFigure:
    """One HTTP measurement: samples accepted, wall time, and the bridge's CPU time."""

    figure: Figure
    requests: int
    bridge_cpu_s: float

    @property
    def per_cpu_second(self) -> float:
        return self.figure.events / self.bridge_cpu_s if self.bridge_cpu_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TelemetryResult:
    """Every figure of one run, against the same broker."""

    batch_size: int
    workers: int
    batched: BridgeFigure
    single_json: BridgeFigure
    single_cmcd: BridgeFigure
    raw: Figure


def json_sample(n: int, sessions: int, stamp: int) -> dict[str, object]:
    """A player sample as the JSON API takes it; n spreads viewers and sessions."""
    session = n % sessions
    return {
        "id": f"s-{n}",
        "viewer": f"viewer-{session:06d}",
        "session": f"session-{session:06d}-{os.getpid()}",
        "content": "sports/final",
        "cdn": "cdn-a",
        "sampled_at": stamp,
        "bitrate_kbps": 4_500,
        "buffer_ms": 12_000 + n % 1000,
        "play_ms": 1_000,
        "rebuffer_count": n % 2,
        "rebuffer_ms": 250 * (n % 2),
    }


def _request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connection(
    port: int, requests: list[bytes], expected: list[int], answers: list[int]
) -> None:
    """Send requests one after another on one keep-alive connection; count accepted."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request, want in zip(requests, expected, strict=True):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            if status != 202:
                raise RuntimeError(f"the bridge answered {status}: {body[:300]!r}")
            accepted = orjson.loads(body)["accepted"]
            if accepted != want:
                raise RuntimeError(f"{accepted} of {want} samples accepted: {body[:300]!r}")
            answers.append(accepted)
    finally:
        writer.close()


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its worker processes, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += _cpu_seconds(int(child))
    return total


def _offer(
    name: str, pid: int, port: int, requests: list[bytes], per_request: int, connections: int
) -> BridgeFigure:
    answers: list[int] = []
    shares = [requests[i::connections] for i in range(connections)]

    async def run() -> None:
        await asyncio.gather(
            *(_connection(port, share, [per_request] * len(share), answers) for share in shares)
        )

    cpu_before = _cpu_seconds(pid)
    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(pid) - cpu_before
    return BridgeFigure(Figure(name, sum(answers), elapsed), len(requests), cpu)


def _raw_records(count: int, batch_size: int, stamp: int) -> list[tuple[bytes, bytes]]:
    """The records the bridge writes for `count` samples in requests of batch_size."""
    encoder = BlockEncoder(default_codec(), CATALOG["qoe.telemetry"].partitions)
    pseudonyms = EpochPseudonyms(EpochKey("bench", os.urandom(32)))
    samples = [
        PlayerSample(
            sample_id=f"s-{n}",
            viewer=f"viewer-{n % SESSIONS_PER_BATCH}",
            session=f"session-{n % SESSIONS_PER_BATCH}",
            content="sports/final",
            cdn="cdn-a",
            serving_region=None,
            sampled_at=stamp,
            bitrate_kbps=4_500,
            buffer_ms=12_000,
            play_ms=1_000,
            rebuffer_count=0,
            rebuffer_ms=0,
            startup_ms=None,
            exited_before_start=False,
            error_code=None,
        )
        for n in range(count)
    ]
    provenance = Provenance("bench", stamp, "SE", "E")
    return [
        record
        for first in range(0, count, batch_size)
        for record in encoder.encode_blocks(
            samples[first : first + batch_size], provenance, pseudonyms, os.urandom(16)
        )
    ]


@contextmanager
def running_bridge(settings: Settings, bridge: BridgeSettings, port: int) -> Iterator[int]:
    """`liveward serve bridge` as a process for the bench; yields its PID."""
    process = ManagedProcess(
        "bench-bridge",
        settings.state_dir / "pids" / "bench-bridge.pid",
        settings.log_dir / "bench-bridge.log",
    )
    process.start(
        [sys.executable, "-m", "liveward.cli", "serve", "bridge", "--port", str(port)],
        env={**os.environ, **settings.as_env(), **bridge_env(bridge)},
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if not wait_until(healthy, timeout=60, interval=0.2):
            raise RuntimeError(f"the bridge did not start:\n{process.log_tail(30)}")
        pid = process.pid()
        assert pid is not None
        yield pid
    finally:
        process.stop()


def run_telemetry_bench(
    base: Settings,
    *,
    samples: int,
    batch_size: int,
    singles: int,
    connections: int,
    port: int,
    workers: int,
) -> TelemetryResult:
    """Batched and single-sample requests through a bridge process, and the raw baseline."""
    stamp = now_ms()
    with tempfile.TemporaryDirectory(prefix="liveward-bench-") as scratch:
        settings = with_demo_geo(base, Path(scratch) / "geo").model_copy(
            update={"state_dir": Path(scratch) / "state"}
        )
        topic = _fresh_topic(base, "telemetry", 6)
        bridge = BridgeSettings(
            topic=topic,
            workers=workers,
            max_samples=max(batch_size, 1),
            rate_limit_samples_per_s=1e9,
            rate_limit_burst=1e9,
        )
        headers = {"Content-Type": "application/json", "X-Forwarded-For": "89.160.20.112"}
        batches = [
            _request(
                port,
                "/v1/telemetry",
                orjson.dumps(
                    {
                        "samples": [
                            json_sample(b * batch_size + i, SESSIONS_PER_BATCH, stamp)
                            for i in range(batch_size)
                        ]
                    }
                ),
                headers,
            )
            for b in range(max(1, samples // batch_size))
        ]
        single_json = [
            _request(
                port,
                "/v1/telemetry",
                orjson.dumps({"samples": [json_sample(n, 1000, stamp)]}),
                headers,
            )
            for n in range(singles)
        ]
        cmcd = [
            _request(
                port,
                "/v1/telemetry?CMCD="
                + quote(f'bl=21300,br=3200,cid="sports/final",d=4004,ot=v,sid="s-{n % 1000}"'),
                b"",
                {},
            )
            for n in range(singles)
        ]
        # Proxies are trusted so the X-Forwarded-For address (Sweden) is the geo looked up.
        settings = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"trusted_proxies": ("127.0.0.1",)})}
        )
        with running_bridge(settings, bridge, port) as pid:
            # Warm up: the first requests pay for connections and the producer's metadata.
            _offer("warm-up", pid, port, batches[:4], batch_size, 2)
            batched = _offer(
                f"bridge, JSON batches of {batch_size} ({connections} connections)",
                pid, port, batches, batch_size, connections,
            )  # fmt: skip
            many = connections * SINGLE_CONNECTIONS_FACTOR
            single = _offer(
                f"bridge, single-sample JSON requests ({many} connections)",
                pid, port, single_json, 1, many,
            )  # fmt: skip
            single_cmcd = _offer(
                f"bridge, single-sample CMCD query requests ({many} connections)",
                pid, port, cmcd, 1, many,
            )  # fmt: skip
        records = _raw_records(batched.figure.events, batch_size, stamp)
        raw_records = raw_produce(
            base,
            topic,
            records,
            name=f"raw confluent-kafka producer (the same {len(records):,} block records, "
            "pre-encoded)",
            **PRODUCER_TUNING,
        )
        # In samples/s like the bridge's figures.
        raw = Figure(raw_records.name, batched.figure.events, raw_records.seconds)
    return TelemetryResult(batch_size, workers, batched, single, single_cmcd, raw)
