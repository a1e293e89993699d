"""The privacy scan's I/O: read analytics topics and ClickHouse tables, and let the detector judge.

Topics are read from their first to their last offset at the time of the scan (a consumer
without a group commit, so the scan changes nothing); each record is decoded (Avro, or
JSON for the worker's internal partials) and every field checked; a `qoe.telemetry`
batch is checked as its own fields and then every sample in it, each with its place.
Tables are checked column by column inside ClickHouse: a regular expression pre-filter
(`match`), the known raw ids (`IN`) and the pseudonym format pick candidate values, which
the same detector then confirms. Aggregate-state columns are binary sketches and are not
read; they are computed from the sample columns that are.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from liveward.settings import Settings
from processors.privacy_scan import CANDIDATE_RE2, PSEUDONYM, Detector, Hit
from sinks.clickhouse.backends import ClickHouseBackend, qualified, quote_identifier, quote_string
from sinks.clickhouse.tables import DEFAULT_ROUTES
from streams.codec import default_codec
from streams.consumer import consumer_config
from streams.errors import DecodeError
from streams.events import QoETelemetryBatch, QoETelemetryBlock, QoETelemetrySample
from streams.telemetry import samples_of_record

log = logging.getLogger(__name__)

# The worker's internal topic of QoE partials (JSON): analytics data like the rest.
QOE_PARTIALS_TOPIC = "liveward-processors-qoe-partials"
# Records of qoe.telemetry, read as their samples.
TELEMETRY_RECORDS = frozenset(
    e.SCHEMA_NAME for e in (QoETelemetryBlock, QoETelemetryBatch, QoETelemetrySample)
)
ANALYTICS_TOPICS = tuple(
    sorted({*DEFAULT_ROUTES, "qoe.telemetry", "qoe.aggregates", QOE_PARTIALS_TOPIC})
)
# Where the raw viewer ids live (a security topic the scan reads, never scans).
SUBSCRIBERS_TOPIC = "subscribers.entitlements"
# Per column, at most this many distinct offending values are fetched to report.
TABLE_SAMPLE = 20
KNOWN_IDS_PER_QUERY = 1_000
IDLE_POLLS = 5


@dataclass(frozen=True, slots=True)
class Finding:
    """A hit, the topic or table it is in (`source`), and exactly where (`where`)."""

    source: str
    where: str
    hit: Hit
    count: int = 1

    def describe(self) -> str:
        return f"{self.hit.kind} in {self.where}, field {self.hit.field}: {self.hit.masked}"


@dataclass(slots=True)
class ScanReport:
    """What a scan looked at and what it found."""

    findings: list[Finding] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    missing_topics: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def summary(self) -> list[tuple[str, str, str, int, Finding]]:
        """(source, field, kind, occurrences, first finding) per distinct problem."""
        grouped: dict[tuple[str, str, str], list[Finding]] = {}
        for finding in self.findings:
            key = (finding.source, finding.hit.field, finding.hit.kind)
            grouped.setdefault(key, []).append(finding)
        return [
            (source, name, kind, sum(f.count for f in found), found[0])
            for (source, name, kind), found in sorted(grouped.items())
        ]


def _partitions_with_data(
    consumer: Consumer, topic: str, timeout: float
) -> list[tuple[int, int, int]] | None:
    """(partition, low, high) of topic's non-empty partitions; None if the topic is missing."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    ranges = []
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout
        )
        if high > low:
            ranges.append((partition, low, high))
    return ranges


def read_topic(
    settings: Settings, topic: str, *, timeout: float = 10.0
) -> Iterator[tuple[int, int, bytes | None, bytes | None]] | None:
    """(partition, offset, key, value) of every record in topic now; None if it is missing."""
    consumer = Consumer(consumer_config(settings, f"liveward-privacy-scan-{uuid.uuid4().hex[:8]}"))
    ranges = _partitions_with_data(consumer, topic, timeout)
    if ranges is None:
        consumer.close()
        return None
    return _records(consumer, topic, ranges)


def _records(
    consumer: Consumer, topic: str, ranges: list[tuple[int, int, int]]
) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    try:
        if not ranges:
            return
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in ranges])
        remaining = {p: high for p, _, high in ranges}
        idle = 0
        # Compacted-away or transaction-marker offsets at the end never arrive: stop once
        # nothing has come for a while even if a partition's position is short of its end.
        while remaining and idle < IDLE_POLLS:
            messages = consumer.consume(5_000, timeout=1.0)
            idle = 0 if messages else idle + 1
            for message in messages:
                if message.error() is not None:
                    continue
                partition, offset = message.partition(), message.offset()
                assert partition is not None and offset is not None
                end = remaining.get(partition)
                if end is None:
                    continue
                if offset < end:
                    yield partition, offset, message.key(), message.value()
                if offset + 1 >= end:
                    # Compaction or transaction markers can leave the last offsets empty.
                    del remaining[partition]
            if remaining:
                positions = consumer.position([TopicPartition(topic, p) for p in remaining])
                for tp in positions:
                    if tp.offset >= remaining.get(tp.partition, 0):
                        remaining.pop(tp.partition, None)
    finally:
        consumer.close()


def _decode(topic: str, value: bytes) -> list[tuple[str, dict[str, Any]]] | None:
    """(where in the record, fields to check) for each part of a record; None if it does
    not decode. A telemetry block's samples are parts of their own, after its shared fields."""
    if topic == QOE_PARTIALS_TOPIC:
        data = orjson.loads(value)
        return [("", data if isinstance(data, dict) else {"value": data})]
    try:
        version, record = default_codec().decode_record(value)
    except DecodeError:
        return None  # the dead-letter path owns undecodable records
    if version.name not in TELEMETRY_RECORDS:
        return [("", record)]
    try:
        samples = samples_of_record(record)
    except DecodeError:
        return None
    # Every sample is a part of its own, joined with what its record shares; the block's
    # own fields (its key among them) are checked once.
    shared = {name: value for name, value in record.items() if not isinstance(value, bytes | list)}
    parts = [("", shared)]
    for index, sample in enumerate(samples):
        parts.append((f" sample {index}", sample.to_avro()))
    return parts


def scan_topics(
    settings: Settings, topics: Sequence[str], detector: Detector, report: ScanReport
) -> None:
    """Scan every record of topics into report."""
    for topic in topics:
        records = read_topic(settings, topic)
        if records is None:
            report.missing_topics.append(topic)
            continue
        seen = 0
        for partition, offset, key, value in records:
            seen += 1
            where = f"topic {topic}/{partition}@{offset}"
            if key:
                for hit in detector.scan_value("<key>", key.decode("utf-8", "replace")):
                    report.findings.append(Finding(topic, where, hit))
            if value is None:
                continue
            try:
                parts = _decode(topic, value)
            except orjson.JSONDecodeError:
                parts = None
            if parts is None:
                # Not decodable: still look for identifiers in the raw bytes.
                parts = [("", {"<raw>": value.decode("utf-8", "replace")})]
            for place, record in parts:
                report.findings.extend(
                    Finding(topic, where + place, hit) for hit in detector.scan_record(record)
                )
        report.records[topic] = seen


def known_viewer_ids(settings: Settings) -> set[str]:
    """Raw viewer ids the subscribers topic holds (its keys and viewer_id fields)."""
    ids: set[str] = set()
    records = read_topic(settings, SUBSCRIBERS_TOPIC)
    for _, _, key, value in records or ():
        if key:
            ids.add(key.decode("utf-8", "replace"))
        if value:
            try:
                _, record = default_codec().decode_record(value)
            except DecodeError:
                continue
            viewer = record.get("viewer_id")
            if isinstance(viewer, str):
                ids.add(viewer)
    return ids


def scanned_tables(backend: ClickHouseBackend) -> list[str]:
    """Tables of the database holding rows (views and materialized views read from these)."""
    rows = backend.execute(
        "SELECT name FROM system.tables "
        f"WHERE database = {quote_string(backend.database)} "
        "AND engine NOT IN ('View', 'MaterializedView') ORDER BY name"
    )
    return [str(name) for (name,) in rows]


def _string_columns(backend: ClickHouseBackend, table: str) -> list[tuple[str, bool]]:
    """(column, is_array) for the table's String-valued columns."""
    rows = backend.execute(
        "SELECT name, type FROM system.columns "
        f"WHERE database = {quote_string(backend.database)} AND table = {quote_string(table)}"
    )
    columns = []
    for name, column_type in rows:
        base = str(column_type)
        for wrapper in ("Nullable(", "LowCardinality("):
            base = base.replace(wrapper, "")
        if base.startswith("String"):
            columns.append((str(name), False))
        elif base.startswith("Array(String"):
            columns.append((str(name), True))
    return columns


def _column_conditions(
    column: str, *, is_array: bool, pseudonym: bool, known: Sequence[str]
) -> list[str]:
    value = "x" if is_array else quote_identifier(column)
    tests = [f"match({value}, {quote_string(CANDIDATE_RE2)})"]
    if pseudonym:
        tests.append(f"NOT match({value}, {quote_string('^' + PSEUDONYM.pattern + '$')})")
    for start in range(0, len(known), KNOWN_IDS_PER_QUERY):
        chunk = ", ".join(quote_string(i) for i in known[start : start + KNOWN_IDS_PER_QUERY])
        tests.append(f"{value} IN ({chunk})")
    if is_array:
        return [f"arrayExists(x -> {test}, {quote_identifier(column)})" for test in tests]
    return tests


def scan_tables(backend: ClickHouseBackend, detector: Detector, report: ScanReport) -> None:
    """Scan every String column of every table of the backend's database into report."""
    known = sorted(detector.known_ids)
    for table in scanned_tables(backend):
        where = f"table {backend.database}.{table}"
        source = f"{backend.database}.{table}"
        columns = _string_columns(backend, table)
        all_columns = [
            str(name)
            for (name,) in backend.execute(
                "SELECT name FROM system.columns "
                f"WHERE database = {quote_string(backend.database)} "
                f"AND table = {quote_string(table)}"
            )
        ]
        report.findings.extend(
            Finding(source, where, hit) for hit in detector.scan_names(all_columns)
        )
        report.tables[table] = int(
            backend.execute(f"SELECT count() FROM {qualified(backend, table)}")[0][0]
        )
        for column, is_array in columns:
            pseudonym = column in detector.pseudonym_fields
            # One value can meet several conditions: report each (value, kind) once.
            found: dict[tuple[str, str], Finding] = {}
            for condition in _column_conditions(
                column, is_array=is_array, pseudonym=pseudonym, known=known
            ):
                for finding in _confirm(backend, table, column, condition, is_array, detector):
                    found.setdefault((finding.hit.kind, finding.hit.value), finding)
            report.findings.extend(Finding(source, where, f.hit, f.count) for f in found.values())


def _confirm(
    backend: ClickHouseBackend,
    table: str,
    column: str,
    condition: str,
    is_array: bool,
    detector: Detector,
) -> Iterable[Finding]:
    quoted = quote_identifier(column)
    rows = backend.execute(
        f"SELECT {quoted}, count() FROM {qualified(backend, table)} "
        f"WHERE {condition} GROUP BY {quoted} LIMIT {TABLE_SAMPLE}"
    )
    for value, count in rows:
        values = value if is_array else [value]
        for item in values:
            if item is None:
                continue
            for hit in detector.scan_value(column, str(item)):
                yield Finding(table, table, hit, int(count))


def scan(
    settings: Settings,
    backend: ClickHouseBackend | None,
    *,
    topics: Sequence[str] = ANALYTICS_TOPICS,
    known_ids: Iterable[str] = (),
    read_subscribers: bool = True,
) -> ScanReport:
    """Scan topics (and, with a backend, every table of its database) for direct identifiers."""
    ids = set(known_ids)
    if read_subscribers:
        ids |= known_viewer_ids(settings)
    detector = Detector(ids)
    report = ScanReport()
    scan_topics(settings, topics, detector, report)
    if backend is not None:
        scan_tables(backend, detector, report)
    return report
