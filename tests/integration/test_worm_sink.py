"""The license log sink on a real broker: offset order, commits behind fsync, crashes, failures.

Every LicenseIssued record of `drm.licenses` must end up in the log exactly once, in
offset order, whatever else the session produced there; a crash between the fsync and
the offset commit (injected by making the commit fail, as a dying process would) must
not leave a gap or a duplicate once the sink restarts, and `audit verify` must pass.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from typer.testing import CliRunner

from liveward.commands.audit import app as audit_app
from liveward.settings import Settings
from schemas import SCHEMA_DIR
from sinks.backoff import Backoff
from sinks.worm.audit import verify_log
from sinks.worm.entries import LogEntry
from sinks.worm.errors import WormError
from sinks.worm.keys import load_public_key, public_key_path
from sinks.worm.log import LogReader, scan_segment
from sinks.worm.sink import LICENSES_TOPIC, LicenseLogSink
from streams.codec import default_codec
from streams.errors import DecodeError
from streams.events import LicenseDecision, LicenseIssued
from streams.meta import new_event_id, now_ms
from streams.producer import EventProducer
from streams.topics import apply_topics

LICENSES = 120


class Crash(Exception):
    """The process died here."""


@pytest.fixture
def settings(kafka_cluster: Settings, tmp_path: Path) -> Settings:
    """The session's broker, with this test's own state dir (signing key, log)."""
    apply_topics(kafka_cluster)
    return kafka_cluster.model_copy(update={"state_dir": tmp_path})


def licenses(count: int, run: str) -> list[LicenseIssued]:
    return [
        LicenseIssued(
            event_id=new_event_id(),
            occurred_at=now_ms(),
            region="eu-west",
            license_id=f"{run}-{n}",
            viewer_ref=f"viewer-{n % 13}",
            session_id=f"session-{n % 17}",
            content_id=f"content-{n % 3}",
            key_ids=(f"key-{n}", f"key-{n + 1}"),
            protocol="clearkey-rest",
            decision=LicenseDecision.GRANTED if n % 10 else LicenseDecision.REFUSED,
            reason="ok" if n % 10 else "geo-blocked",
            latency_us=500 + n,
        )
        for n in range(count)
    ]


def topic_licenses(settings: Settings) -> list[tuple[int, str]]:
    """(offset, event_id) of every LicenseIssued record in drm.licenses, in offset order."""
    reader = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    _, high = reader.get_watermark_offsets(TopicPartition(LICENSES_TOPIC, 0), timeout=10)
    reader.assign([TopicPartition(LICENSES_TOPIC, 0, OFFSET_BEGINNING)])
    found: list[tuple[int, str]] = []
    codec = default_codec()
    position = 0
    try:
        while position < high:
            for message in reader.consume(500, timeout=2.0):
                if message.error() is not None:
                    continue
                offset = message.offset()
                assert offset is not None
                position = offset + 1
                try:
                    event = codec.decode_as(message.value() or b"", LicenseIssued)
                except DecodeError:
                    continue
                found.append((offset, event.event_id))
    finally:
        reader.close()
    return found


def log_licenses(log_dir: Path) -> list[tuple[int, str]]:
    """(Kafka offset, event_id) of every entry in the log, in log order."""
    codec = default_codec()
    found = []
    for _, path in LogReader(log_dir).segment_files():
        for _, data in scan_segment(path).records:
            entry = LogEntry.decode(data)
            found.append((entry.offset, codec.decode_as(entry.event, LicenseIssued).event_id))
    return found


def committed(settings: Settings, group_id: str) -> int:
    """The group's committed offset (next to read) of drm.licenses/0; 0 where none is."""
    reader = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": group_id})
    try:
        [position] = reader.committed([TopicPartition(LICENSES_TOPIC, 0)], timeout=10)
    finally:
        reader.close()
    return max(position.offset, 0)


def test_licenses_land_in_offset_order_and_survive_a_crash_before_commit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    group = f"license-log-{run}"
    log_dir = settings.state_dir / "worm" / "log"
    producer = EventProducer(settings)
    producer.send_all(LICENSES_TOPIC, licenses(LICENSES // 4, run))
    # Not a license: the sink dead-letters it and the log goes on.
    not_a_license = (SCHEMA_DIR / "samples" / "IngestHealth-v2.bin").read_bytes()
    producer.send_raw(LICENSES_TOPIC, [(b"x", not_a_license)])
    producer.send_all(LICENSES_TOPIC, licenses(LICENSES - LICENSES // 4, run + "b"))
    producer.close()
    expected = topic_licenses(settings)
    assert len(expected) >= LICENSES

    first = LicenseLogSink(
        settings, group_id=group, batch_size=16, checkpoint_every=40, checkpoint_interval_s=3600
    )
    # Half the log, and at least as far as the bad record (the topic may hold other
    # tests' licences before ours).
    while first.log.size < len(expected) // 2 or first.stats.dead_lettered == 0:
        first.step()
        # Whatever Kafka holds as committed is already in the log, on disk.
        logged = {offset for offset, _ in log_licenses(log_dir)}
        assert {o for o, _ in expected if o < committed(settings, group)} <= logged
    assert first.stats.dead_lettered == 1

    # The next batch is appended and fsynced, then the process dies before committing it.
    before = first.log.size
    commit = first._consumer.commit

    def die_once_appended() -> None:
        if first.log.size > before:
            raise Crash
        commit()  # an empty poll: nothing appended yet, nothing to die over

    monkeypatch.setattr(first._consumer, "commit", die_once_appended)
    with pytest.raises(Crash):
        while True:
            first.step()
    with pytest.raises(Crash):
        first.close()  # releases the files and the group; the commit still fails
    assert committed(settings, group) <= log_licenses(log_dir)[-1][0]

    second = LicenseLogSink(
        settings, group_id=group, batch_size=16, checkpoint_every=40, checkpoint_interval_s=0.5
    )
    second.start()
    try:
        deadline = time.monotonic() + 30
        while log_licenses(log_dir) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        second.stop()

    assert log_licenses(log_dir) == expected  # every license once, in offset order
    assert second.stats.skipped > 0  # the re-delivered batch was recognised, not re-appended
    assert committed(settings, group) == expected[-1][0] + 1

    key, name = load_public_key(public_key_path(settings))
    report = verify_log(log_dir, key, name=name)
    assert report.ok, report.problems
    assert report.records == len(expected)
    assert report.unsigned_records == 0

    result = CliRunner().invoke(
        audit_app,
        ["verify", "--log", str(log_dir), "--public-key", str(public_key_path(settings))],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records"] == len(expected)


class FlakyReplica:
    """A sealed-file replica whose first checkpoint upload fails, as an unreachable bucket would."""

    def __init__(self) -> None:
        self.failures_left = 1
        self.stored: set[Path] = set()

    def put(self, path: Path) -> None:
        if self.failures_left and path.suffix == ".note":
            self.failures_left -= 1
            raise WormError(f"{path.name}: bucket unreachable", reason="replica-failed")
        self.stored.add(path)

    def sync(self, paths: Sequence[Path]) -> None:
        for path in paths:
            if path not in self.stored:
                self.put(path)


def test_a_failed_turn_reopens_and_the_log_goes_on_without_gaps(settings: Settings) -> None:
    producer = EventProducer(settings)
    producer.send_all(LICENSES_TOPIC, licenses(40, uuid.uuid4().hex[:8]))
    producer.close()
    expected = topic_licenses(settings)
    log_dir = settings.state_dir / "worm" / "log"
    replica = FlakyReplica()

    sink = LicenseLogSink(
        settings,
        group_id=f"license-log-{uuid.uuid4().hex[:8]}",
        batch_size=16,
        checkpoint_every=10,
        backoff=Backoff(initial=0.1, cap=0.5),
        replica=replica,
    )
    sink.start()
    try:
        deadline = time.monotonic() + 30
        while log_licenses(log_dir) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        sink.stop()

    assert sink.stats.failures == 1
    assert log_licenses(log_dir) == expected
    key, name = load_public_key(public_key_path(settings))
    report = verify_log(log_dir, key, name=name)
    assert report.ok, report.problems
    assert {p.name for p in replica.stored} >= {"log.json", f"{len(expected):020d}.note"}
