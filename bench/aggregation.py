"""QoE aggregation speed: one Faust worker next to a raw consume-and-decode loop, and the
end-to-end latency from producing a sample to its window's aggregate row in ClickHouse.

Everything runs on a broker of the bench's own (its own ports and state directory), so
the worker it starts, with every agent, touches nobody's topics or consumer groups.

Throughput: `events` samples are produced first, as the bridge writes them: requests of
`REQUEST_SAMPLES` samples of `REQUEST_SESSIONS` sessions (as the telemetry bench sends
them), each a `QoETelemetryBlock` record per partition. Then
`liveward worker` starts and the bench reads the worker's partials topic, whose records
say how many samples each one summarised. The worker's rate is samples over the time
between its first and its last partial (Kafka timestamps), so its start-up is not
counted. The baselines read the same records with a plain confluent-kafka consumer that
decodes them (every sample) with the Avro codec, as the worker does, and with a Faust
agent that only takes them.

Latency: with the worker and the analytics sink (embedded chdb) running, samples are
POSTed to a bridge of the bench's own (`liveward serve bridge`) at a steady rate, stamped
with the current time, so the figure covers the whole path: HTTP, the bridge, Kafka, the
two stages of the worker and the sink. A window can only close once the
watermark has passed its end plus the lateness, so the latency of a window is measured
from its end to the moment its aggregate row can be read in ClickHouse; minus the
lateness, that is what the pipeline itself adds.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.telemetry import running_bridge
from infra.kafka import KafkaCluster
from infra.live_system import with_demo_geo
from infra.processes import ManagedProcess, wait_until
from liveward.settings import AnalyticsSettings, KafkaSettings, Settings, load_settings
from processors.app import APP_ID
from services.bridge.settings import BridgeSettings
from streams.catalog import CATALOG
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.events import QoETelemetrySample
from streams.meta import new_event_id, now_ms
from streams.producer import producer_config
from streams.telemetry import blocks_of, decode_block
from streams.topics import apply_topics

TELEMETRY = "qoe.telemetry"
PARTIALS = f"{APP_ID}-qoe-partials"
# The latency run offers its samples as one bridge request this often.
OFFER_INTERVAL_S = 0.05
# The latency run's client address, as its bridge sees it (X-Forwarded-For): in Sweden in
# the demo geo databases.
BENCH_CLIENT_IP = "89.160.20.112"
# Samples per simulated bridge request, and sessions among them (the telemetry bench's
# JSON batches: 500 samples of 100 sessions).
REQUEST_SAMPLES = 500
REQUEST_SESSIONS = 100


@dataclass(frozen=True, slots=True)
class AggregationResult:
    events: int
    records: int
    worker_seconds: float
    raw_seconds: float
    window_ms: int
    lateness_ms: int
    # Per window: from its end to its row in ClickHouse, ms.
    latencies_ms: tuple[float, ...]
    latency_rate: int
    # A Faust agent that only takes batches of the same records: the framework's ceiling
    # (seconds for all `records`, which hold the `events` samples).
    bare_faust_seconds: float | None = None

    @property
    def worker_per_s(self) -> float:
        return self.events / self.worker_seconds if self.worker_seconds else 0.0

    @property
    def raw_per_s(self) -> float:
        return self.events / self.raw_seconds if self.raw_seconds else 0.0

    @property
    def bare_faust_per_s(self) -> float | None:
        if not self.bare_faust_seconds:
            return None
        return self.events / self.bare_faust_seconds


def bench_settings(state_dir: Path, kafka_port: int, window_ms: int, lateness_ms: int) -> Settings:
    return load_settings(
        state_dir=state_dir,
        kafka=KafkaSettings(port=kafka_port, controller_port=kafka_port + 1),
        analytics=AnalyticsSettings(window_ms=window_ms, lateness_ms=lateness_ms),
    )


class SampleSource:
    """Samples for `viewers` viewers over 2 regions, 3 CDNs and 4 contents, at given times:
    each run of `REQUEST_SAMPLES` samples comes from `REQUEST_SESSIONS` of them in turn."""

    def __init__(self, viewers: int = 2_000) -> None:
        self._viewers = [hashlib.sha256(f"bench-{v}".encode()).hexdigest() for v in range(viewers)]
        self._n = 0

    def sample(self, at_ms: int, received_ms: int | None = None) -> QoETelemetrySample:
        """A sample taken at at_ms, received by a bridge at received_ms (default at_ms)."""
        self._n += 1
        request, place = divmod(self._n, REQUEST_SAMPLES)
        v = (request * REQUEST_SESSIONS + place % REQUEST_SESSIONS) % len(self._viewers)
        return QoETelemetrySample(
            event_id=new_event_id(),
            occurred_at=at_ms if received_ms is None else received_ms,
            region="eu-west",
            session_ref=self._viewers[v][:32],
            viewer_pseudonym=self._viewers[v],
            pseudonym_epoch="bench",
            content_id=f"live-{v % 4}",
            cdn=f"cdn-{v % 3}",
            serving_region=("eu-west", "us-east")[v % 2],
            country="NL",
            subdivision="",
            sampled_at=at_ms - 300,
            bitrate_kbps=(1_200, 2_500, 4_500, 7_800)[self._n % 4],
            buffer_ms=12_000,
            play_ms=2_000,
            rebuffer_count=0,
            rebuffer_ms=40 if self._n % 25 == 0 else 0,
            startup_ms=900 if self._n % 50 == 0 else None,
        )


def request_records(samples: list[QoETelemetrySample]) -> list[tuple[bytes, bytes]]:
    """(key, value) of the batches one bridge request of these samples writes."""
    codec = default_codec()
    spec = CATALOG[TELEMETRY]
    return [
        (spec.key_of(batch), codec.encode(batch)) for batch in blocks_of(samples, spec.partitions)
    ]


def produce(settings: Settings, records: Iterator[tuple[bytes, bytes]]) -> int:
    """Produce encoded (key, value) records as fast as the producer takes them; how many."""
    producer = Producer(producer_config(settings))
    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(TELEMETRY, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 1_000 == 0:
            producer.poll(0)
    producer.flush(60)
    return count


def raw_consume_and_decode(settings: Settings, events: int) -> float:
    """Seconds a plain consumer takes to read and decode `events` samples of the topic."""
    codec = default_codec()
    consumer = Consumer(consumer_config(settings, f"bench-raw-{uuid.uuid4().hex}"))
    partitions = CATALOG[TELEMETRY].partitions
    consumer.assign([TopicPartition(TELEMETRY, p, 0) for p in range(partitions)])
    seen = 0
    started = time.perf_counter()
    try:
        while seen < events:
            for message in consumer.consume(10_000, timeout=1.0):
                value = message.value()
                if message.error() is None and value is not None:
                    seen += len(decode_block(codec, value))
    finally:
        consumer.close()
    return time.perf_counter() - started


def worker_rate_window(settings: Settings, events: int, timeout: float) -> float:
    """Seconds between the worker's first and last partial covering `events` samples."""
    consumer = Consumer(consumer_config(settings, f"bench-partials-{uuid.uuid4().hex}"))
    consumer.subscribe([PARTIALS])
    summarised = 0
    first: float | None = None
    last = 0.0
    deadline = time.monotonic() + timeout
    try:
        while summarised < events and time.monotonic() < deadline:
            for message in consumer.consume(1_000, timeout=0.5):
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                stamp = message.timestamp()[1] / 1000
                first = stamp if first is None else min(first, stamp)
                last = max(last, stamp)
                summarised += int(orjson.loads(value)["st"]["n"])
    finally:
        consumer.close()
    if summarised < events or first is None:
        raise RuntimeError(f"the worker summarised {summarised} of {events} samples in time")
    return last - first


def json_samples(source: SampleSource, count: int, at: int) -> list[dict[str, object]]:
    """count player samples taken at `at`, as the bridge's JSON API takes them."""
    items = []
    for _ in range(count):
        sample = source.sample(at)
        items.append(
            {
                "viewer": sample.viewer_pseudonym[:24],
                "session": sample.session_ref,
                "content": sample.content_id,
                "cdn": sample.cdn,
                "serving_region": sample.serving_region,
                "sampled_at": sample.sampled_at,
                "bitrate_kbps": sample.bitrate_kbps,
                "buffer_ms": sample.buffer_ms,
                "play_ms": sample.play_ms,
                "rebuffer_count": sample.rebuffer_count,
                "rebuffer_ms": sample.rebuffer_ms,
            }
        )
    return items


def offer_samples(bridge_url: str, rate: int, stop_at: float) -> None:
    """POST samples stamped with the current time to the bridge at `rate` per second until
    stop_at, a request every `OFFER_INTERVAL_S`; each must be accepted (202)."""
    source = SampleSource(viewers=400)
    interval = OFFER_INTERVAL_S
    per_request = max(1, round(rate * interval))
    next_at = time.monotonic()
    with httpx.Client(timeout=10.0) as client:
        while next_at < stop_at:
            answer = client.post(
                f"{bridge_url}/v1/telemetry",
                json={"samples": json_samples(source, per_request, now_ms())},
                headers={"X-Forwarded-For": BENCH_CLIENT_IP},
            )
            if answer.status_code != 202:
                raise RuntimeError(
                    f"the bridge refused samples: {answer.status_code} {answer.text}"
                )
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


@contextmanager
def running_worker(settings: Settings) -> Iterator[ManagedProcess]:
    process = ManagedProcess(
        name="bench-worker",
        pid_file=settings.state_dir / "pids" / "bench-worker.pid",
        log_file=settings.log_dir / "bench-worker.log",
    )
    process.start(
        [sys.executable, "-m", "liveward.cli", "worker", "--loglevel", "warning"],
        env={**os.environ, **settings.as_env()},
    )
    try:
        yield process
    finally:
        process.stop()


def bare_faust(settings: Settings, records: int, timeout: float = 600) -> float | None:
    """Seconds a Faust agent doing nothing but `take_events` needs for `records` records."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "bench.aggregation", str(records)],
        env={**os.environ, **settings.as_env()},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # Faust's worker sends stdout through its logging, so the line may come prefixed.
    found = re.search(r"bare-faust-seconds ([0-9.]+)", done.stdout + done.stderr)
    return float(found.group(1)) if found else None


def _bare_faust_main(events: int) -> None:
    """The bare agent: same broker settings and batch size as the QoE agent, no work."""
    import faust

    from processors.agents.qoe import BATCH_WITHIN_S, RECORD_BATCH

    settings = load_settings()
    datadir = settings.state_dir / "faust" / "bench-bare"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"bench-bare-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
    )
    topic = app.topic(
        TELEMETRY, key_type=bytes, value_type=bytes, partitions=CATALOG[TELEMETRY].partitions
    )
    seen = 0
    started: float | None = None

    @app.agent(topic)
    async def take(stream: object) -> None:
        nonlocal seen, started
        async for batch in stream.take_events(RECORD_BATCH, within=BATCH_WITHIN_S):  # type: ignore[attr-defined]
            # From the first batch, like the worker's figure: start-up is not counted.
            if started is None:
                started = time.perf_counter()
            seen += len(batch)
            if seen >= events:
                print(f"bare-faust-seconds {time.perf_counter() - started}", flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


def measure_latency(
    settings: Settings, *, rate: int, seconds: float, already: int, bridge_port: int
) -> tuple[float, ...]:
    """Per window, ms from its end to its aggregate row being readable in ClickHouse, the
    samples POSTed to a bridge of the bench's own as they are taken."""
    from sinks.analytics import AnalyticsSink
    from sinks.clickhouse.backends import qualified

    # The bench client's address is Swedish (X-Forwarded-For from a trusted 127.0.0.1).
    geo = with_demo_geo(settings, settings.state_dir / "geo")
    geo = geo.model_copy(
        update={"auth": geo.auth.model_copy(update={"trusted_proxies": ("127.0.0.1",)})}
    )
    bridge = BridgeSettings(rate_limit_samples_per_s=1e9, rate_limit_burst=1e9, workers=1)
    sink = AnalyticsSink(settings, group_id=f"bench-sink-{uuid.uuid4().hex}")
    sink.start()
    failures: list[BaseException] = []
    try:
        # Let the sink land what the throughput run left on the topic first.
        wait_until(lambda: sink.row_counts()["qoe_telemetry_samples"] >= already, timeout=120)
        with running_bridge(geo, bridge, bridge_port):
            window = settings.analytics.window_ms
            lateness = settings.analytics.lateness_ms
            started = now_ms()
            first_window = started - started % window + window
            stop_at = time.monotonic() + seconds

            def offer() -> None:
                try:
                    offer_samples(f"http://127.0.0.1:{bridge_port}", rate, stop_at)
                except BaseException as exc:  # reported after the run, not lost in the thread
                    failures.append(exc)

            producing = threading.Thread(target=offer, daemon=True)
            producing.start()
            # Windows closed by the samples' own watermark; later ones wait for the idle
            # timer.
            last_window = started + int(seconds * 1000) - lateness - 2 * window
            last_window -= last_window % window
            want = set(range(first_window, last_window + 1, window))
            seen: dict[int, int] = {}
            query = (
                "SELECT DISTINCT window_start FROM "
                f"{qualified(sink.backend, 'qoe_aggregates')} WHERE window_start >= {first_window}"
            )
            deadline = time.monotonic() + seconds + 60
            # Polled while the samples are offered: a row counts from the first time seen.
            while not want <= set(seen) and time.monotonic() < deadline and not failures:
                for (start,) in sink.backend.execute(query):
                    seen.setdefault(int(start), now_ms())
                time.sleep(0.05)
            producing.join()
    finally:
        sink.stop()
    if failures:
        raise RuntimeError(f"offering samples to the bridge failed: {failures[0]!r}")
    return tuple(float(seen[w] - (w + window)) for w in sorted(want) if w in seen)


def run_aggregation_bench(
    *,
    events: int,
    kafka_port: int,
    window_ms: int,
    lateness_ms: int,
    latency_rate: int,
    latency_seconds: float,
    state_dir: Path,
) -> AggregationResult:
    settings = bench_settings(state_dir, kafka_port, window_ms, lateness_ms)
    cluster = KafkaCluster(settings)
    cluster.start()
    try:
        apply_topics(settings)
        source = SampleSource()
        # 20 samples per ms of event time, all well before the latency run starts; a
        # request holds the samples of REQUEST_SAMPLES / 20 ms.
        base = now_ms() - events // 20 - 120_000

        def requests() -> Iterator[tuple[bytes, bytes]]:
            for first in range(0, events, REQUEST_SAMPLES):
                count = min(REQUEST_SAMPLES, events - first)
                received = base + (first + count) // 20
                samples = [source.sample(base + (first + i) // 20, received) for i in range(count)]
                yield from request_records(samples)

        records = produce(settings, requests())
        raw_seconds = raw_consume_and_decode(settings, events)
        bare_seconds = bare_faust(settings, records)
        with running_worker(settings):
            worker_seconds = worker_rate_window(settings, events, timeout=600)
            latencies = measure_latency(
                settings,
                rate=latency_rate,
                seconds=latency_seconds,
                already=events,
                bridge_port=kafka_port + 2,
            )
    finally:
        cluster.stop()
    return AggregationResult(
        events=events,
        records=records,
        worker_seconds=worker_seconds,
        raw_seconds=raw_seconds,
        window_ms=window_ms,
        lateness_ms=lateness_ms,
        latencies_ms=latencies,
        latency_rate=latency_rate,
        bare_faust_seconds=bare_seconds,
    )


def percentile_ms(values: tuple[float, ...], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def median_ms(values: tuple[float, ...]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    _bare_faust_main(int(sys.argv[1]))
