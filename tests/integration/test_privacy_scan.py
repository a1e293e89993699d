"""`liveward privacy scan` against real topics and a real ClickHouse server.

A scan must pass on clean analytics data and fail, naming what and where, when a raw IP
address or a raw viewer id is planted in a topic or in a table. Planted records go to a
topic and a database of the test's own, so the session's shared topics stay clean.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.cimpl import NewTopic
from typer.testing import CliRunner

from liveward.commands.privacy import app as privacy_app
from liveward.settings import (
    KafkaSettings,
    MediaSettings,
    ServiceSettings,
    Settings,
    load_settings,
)
from sinks.clickhouse.backends import ClickHouseBackend, NativeBackend
from sinks.clickhouse.migrations import apply_migrations
from sinks.clickhouse.tables import QOE_AGGREGATES, QOE_TELEMETRY_SAMPLES
from sinks.privacy import ANALYTICS_TOPICS, scan
from streams.events import QoEAggregate, QoETelemetrySample, SubscriberEntitlements
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer
from streams.topics import admin_client, apply_topics
from tests.fixtures.qoe import blocks, send_samples, telemetry

RAW_IP = "198.51.100.23"


def aggregate(**fields: object) -> QoEAggregate:
    values: dict[str, object] = {
        "event_id": new_event_id(),
        "occurred_at": now_ms(),
        "region": "eu-west",
        "window_start": now_ms() - 20_000,
        "window_end": now_ms() - 10_000,
        "serving_region": "eu-west",
        "cdn": "cdn-a",
        "content_id": "live-1",
        "sessions": 12,
        "viewers": 11,
        "samples": 40,
        "rebuffer_ratio": 0.01,
        "exits_before_start": 0,
        "error_rate": 0.0,
        "bitrate_p50_kbps": 3000.0,
        "bitrate_p95_kbps": 6000.0,
    }
    values.update(fields)
    return QoEAggregate(**values)  # type: ignore[arg-type]


@pytest.fixture
def topic(kafka_cluster: Settings, unique_name: str) -> str:
    """A topic of the test's own carrying QoE samples, like qoe.telemetry (and the catalog's
    topics, for the subscribers topic the scanner learns raw ids from)."""
    apply_topics(kafka_cluster)
    admin = admin_client(kafka_cluster)
    for future in admin.create_topics([NewTopic(unique_name, 3, 1)]).values():
        future.result()
    return unique_name


@pytest.fixture
def database(clickhouse_server: Settings) -> Iterator[tuple[Settings, ClickHouseBackend]]:
    """A migrated database of the test's own on the session's ClickHouse server."""
    name = "privacy_" + uuid.uuid4().hex[:12]
    settings = clickhouse_server.model_copy(
        update={"clickhouse": clickhouse_server.clickhouse.model_copy(update={"database": name})}
    )
    backend = NativeBackend(settings)
    apply_migrations(backend)
    try:
        yield settings, backend
    finally:
        backend.execute(f"DROP DATABASE IF EXISTS `{name}`")
        backend.close()


def clean_samples(n: int = 20) -> list[QoETelemetrySample]:
    """Samples as one bridge request gives them (received at one time: batches share it)."""
    received = now_ms()
    return [
        telemetry("eu-west", v, sampled_at=received - 5_000 + v, occurred_at=received)
        for v in range(n)
    ]


def fill(
    settings: Settings,
    backend: ClickHouseBackend,
    topic: str,
    samples: list[QoETelemetrySample],
    aggregates: list[QoEAggregate],
) -> None:
    producer = EventProducer(settings)
    send_samples(producer, samples, topic)
    producer.close()
    backend.insert(
        QOE_TELEMETRY_SAMPLES.table,
        QOE_TELEMETRY_SAMPLES.column_names,
        [QOE_TELEMETRY_SAMPLES.row(s) for s in samples],
    )
    backend.insert(
        QOE_AGGREGATES.table,
        QOE_AGGREGATES.column_names,
        [QOE_AGGREGATES.row(a) for a in aggregates],
    )


def test_clean_analytics_data_passes(
    database: tuple[Settings, ClickHouseBackend], topic: str
) -> None:
    settings, backend = database
    # Truncated networks and coarse geo are what analytics may hold.
    samples = [*clean_samples(), *clean_samples(3)]
    samples[0] = replace(samples[0], subdivision="198.51.100.0/24")
    fill(settings, backend, topic, samples, [aggregate(), aggregate(cdn="*", content_id="*")])

    report = scan(settings, backend, topics=[topic])

    assert report.clean, [f.describe() for f in report.findings]
    assert report.records == {topic: len(blocks(samples))}
    # Every table with rows was looked at, the rollups the views fed included.
    assert report.tables["qoe_telemetry_samples"] == len(samples)
    assert report.tables["qoe_session_days"] > 0


@pytest.mark.parametrize("place", ["topic", "table"])
def test_a_planted_raw_ip_fails_the_scan(
    database: tuple[Settings, ClickHouseBackend], topic: str, place: str
) -> None:
    settings, backend = database
    leaky = replace(clean_samples(1)[0], subdivision=f"NH via {RAW_IP}")
    if place == "topic":
        fill(settings, backend, topic, [*clean_samples(), leaky], [])
        backend.execute(f"TRUNCATE TABLE `{backend.database}`.qoe_telemetry_samples")
        backend.execute(f"TRUNCATE TABLE `{backend.database}`.qoe_session_days")
    else:
        fill(settings, backend, topic, clean_samples(), [])
        backend.insert(
            QOE_TELEMETRY_SAMPLES.table,
            QOE_TELEMETRY_SAMPLES.column_names,
            [QOE_TELEMETRY_SAMPLES.row(leaky)],
        )

    report = scan(settings, backend, topics=[topic])

    found = {(f.source, f.hit.field, f.hit.kind) for f in report.findings}
    if place == "topic":
        assert found == {(topic, "subdivision", "ipv4")}
    else:
        assert (f"{backend.database}.qoe_telemetry_samples", "subdivision", "ipv4") in found
        assert all(source.startswith(f"{backend.database}.") for source, _, _ in found)
    assert all(RAW_IP not in f.describe() for f in report.findings)


@pytest.mark.parametrize("place", ["topic", "table"])
def test_a_planted_raw_viewer_id_fails_the_scan(
    database: tuple[Settings, ClickHouseBackend], topic: str, place: str, kafka_cluster: Settings
) -> None:
    settings, backend = database
    raw_id = f"subscriber-{uuid.uuid4().hex[:8]}"
    # The scanner learns raw ids from the subscribers topic, where they legitimately live.
    producer = EventProducer(kafka_cluster)
    producer.send(
        "subscribers.entitlements",
        SubscriberEntitlements(
            event_id=new_event_id(),
            occurred_at=now_ms(),
            region="eu-west",
            viewer_id=raw_id,
            packages=("sports",),
            content_ids=(),
            device_classes=("web",),
            max_concurrent_streams=2,
            home_country="NL",
            session_version=1,
            active=True,
        ),
    )
    producer.close()
    if place == "topic":
        # A bridge bug passing the raw id where the pseudonym belongs, in one sample of a
        # batch (it shares a session, so a partition and a batch, with the first).
        clean = clean_samples()
        leaky = replace(clean[0], viewer_pseudonym=raw_id, event_id=new_event_id())
        assert any(b.sample_count > 1 for b in blocks([*clean, leaky]))
        fill(settings, backend, topic, [*clean, leaky], [])
        backend.execute(f"TRUNCATE TABLE `{backend.database}`.qoe_telemetry_samples")
        backend.execute(f"TRUNCATE TABLE `{backend.database}`.qoe_session_days")
    else:
        # Somewhere no format check would catch it: only knowing the raw ids does.
        fill(settings, backend, topic, clean_samples(), [aggregate(content_id=raw_id)])

    report = scan(settings, backend, topics=[topic])

    found = {(f.source, f.hit.field, f.hit.kind) for f in report.findings}
    if place == "topic":
        assert (topic, "viewer_pseudonym", "raw-viewer-id") in found
        assert (topic, "viewer_pseudonym", "not-a-pseudonym") in found
        # The finding points at the sample within its batch.
        assert all(" sample " in f.where for f in report.findings if f.source == topic)
    else:
        assert found == {(f"{backend.database}.qoe_aggregates", "content_id", "raw-viewer-id")}


def test_the_command_exits_1_and_says_what_and_where(
    database: tuple[Settings, ClickHouseBackend], topic: str
) -> None:
    settings, backend = database
    leaky = replace(clean_samples(1)[0], country=RAW_IP)
    fill(settings, backend, topic, [leaky], [])

    result = CliRunner().invoke(
        privacy_app, ["scan", "--topic", topic, "--no-subscribers"], env=settings.as_env()
    )

    assert result.exit_code == 1, result.output
    assert "FOUND" in result.output and "ipv4" in result.output
    assert topic in result.output and "qoe_telemetry_samples" in result.output
    assert RAW_IP not in result.output

    clean = CliRunner().invoke(
        privacy_app, ["scan", "--topic", "no-such-topic", "--no-tables"], env=settings.as_env()
    )
    assert clean.exit_code == 0, clean.output


def test_every_analytics_topic_is_in_the_default_scan() -> None:
    assert {"qoe.telemetry", "qoe.aggregates", "liveward-processors-qoe-partials"} <= set(
        ANALYTICS_TOPICS
    )


def test_the_scan_passes_after_a_full_liveward_run(tmp_path: Path, port_offset: int) -> None:
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka=KafkaSettings(port=19492 + port_offset, controller_port=19493 + port_offset),
        services=ServiceSettings(
            auth_port=18481 + port_offset,
            license_port=18491 + port_offset,
            license_grpc_port=18501 + port_offset,
            steering_port=18484 + port_offset,
            bridge_port=18483 + port_offset,
        ),
        media=MediaSettings(
            origin_port_base=18510 + port_offset, edge_port_base=18520 + port_offset
        ),
    )
    env = {**os.environ, **settings.as_env(), "COLUMNS": "160"}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "liveward.cli", "run", "--duration", "20", "--players", "30",
             "--no-kill-region", "--keep-stack"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        result = subprocess.run(
            [sys.executable, "-c", "from liveward.commands.privacy import app; app()", "scan"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        subprocess.run(
            [sys.executable, "-m", "liveward.cli", "stack", "down"],
            env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "no direct identifiers found" in result.stdout
    assert "qoe.telemetry" in result.stdout and "qoe_telemetry_samples" in result.stdout
