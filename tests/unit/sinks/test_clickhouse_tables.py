"""Row mapping: schema-derived columns, values checked, dicts and event dataclasses alike."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from schemas import SCHEMA_DIR
from sinks.clickhouse.migrations import load_migrations
from sinks.clickhouse.tables import (
    DEFAULT_ROUTES,
    INGEST_HEALTH_BEATS,
    QOE_TELEMETRY_SAMPLES,
    TableMapping,
)
from sinks.errors import RecordRejected
from streams.events import IngestHealth, IngestRole, IngestStatus, QoETelemetrySample
from streams.telemetry import SHARED_FIELDS, block_of

SAMPLE: dict[str, Any] = {
    "event_id": "0b7e1c1e-0000-4000-8000-000000000001",
    "occurred_at": 1_700_000_000_123,
    "region": "eu-west",
    "session_ref": "sess",
    "viewer_pseudonym": "pseud",
    "pseudonym_epoch": "epoch-7",
    "content_id": "live-1",
    "cdn": "cdn-a",
    "serving_region": "eu-west",
    "country": "NL",
    "subdivision": "NH",
    "sampled_at": 1_700_000_000_100,
    "bitrate_kbps": 4500,
    "buffer_ms": 12000,
    "play_ms": 1000,
    "rebuffer_count": 1,
    "rebuffer_ms": 250,
}


def test_columns_are_the_schema_fields_in_schema_order() -> None:
    for mapping, schema in (
        (QOE_TELEMETRY_SAMPLES, "QoETelemetrySample"),
        (INGEST_HEALTH_BEATS, "IngestHealth"),
    ):
        fields = json.loads((SCHEMA_DIR / f"{schema}.avsc").read_text())["fields"]
        assert mapping.column_names == tuple(f["name"] for f in fields)


def test_types_fit_both_clickhouse_versions() -> None:
    types = {c.name: c.clickhouse_type for c in QOE_TELEMETRY_SAMPLES.columns}

    assert types["occurred_at"] == "UInt64"  # epoch ms, no DateTime64
    assert types["sampled_at"] == "UInt64"
    assert types["bitrate_kbps"] == "Int32"
    assert types["startup_ms"] == "Nullable(Int32)"
    assert types["exited_before_start"] == "UInt8"
    assert types["error_code"] == "Nullable(String)"
    health = {c.name: c.clickhouse_type for c in INGEST_HEALTH_BEATS.columns}
    assert health["role"] == "String"
    assert health["last_segment_seq"] == "Int64"


def test_a_mapping_and_the_event_dataclass_give_the_same_row() -> None:
    event = QoETelemetrySample(**SAMPLE, startup_ms=900, exited_before_start=True)
    as_dict = {**SAMPLE, "startup_ms": 900, "exited_before_start": True}

    assert QOE_TELEMETRY_SAMPLES.row(event) == QOE_TELEMETRY_SAMPLES.row(as_dict)


def test_a_telemetry_block_gives_a_row_per_sample_as_event_or_mapping() -> None:
    samples = [
        QoETelemetrySample(
            **{
                **SAMPLE,
                "event_id": f"0b7e1c1e-0000-4000-8000-00000000000{n}",
                "bitrate_kbps": 1000 * n,
                "startup_ms": None if n % 2 else 700 * n,
                "error_code": None if n != 2 else "E2",
                "object_type": "v" if n < 3 else None,
            }
        )
        for n in range(1, 4)
    ]
    block = block_of(samples)
    expected = [QOE_TELEMETRY_SAMPLES.row(s) for s in samples]

    assert QOE_TELEMETRY_SAMPLES.rows(block) == expected
    assert QOE_TELEMETRY_SAMPLES.rows(block.to_avro()) == expected
    # An older batch record (an array of sample records) and a single sample, too.
    shared = {name: SAMPLE[name] for name in SHARED_FIELDS}
    batch = {**shared, "samples": [{
        k: v for k, v in s.to_avro().items() if k not in shared} for s in samples]}  # fmt: skip
    assert QOE_TELEMETRY_SAMPLES.rows(batch) == expected
    assert QOE_TELEMETRY_SAMPLES.rows(samples[0]) == expected[:1]


def test_a_block_whose_columns_do_not_add_up_is_rejected_with_its_reason() -> None:
    record = block_of([QoETelemetrySample(**SAMPLE)]).to_avro()
    record["play_ms"] = record["play_ms"][:2]

    with pytest.raises(RecordRejected) as refused:
        QOE_TELEMETRY_SAMPLES.rows(record)
    assert refused.value.reason == "malformed-block"
    assert INGEST_HEALTH_BEATS.unpack is None


def test_schema_defaults_fill_missing_optional_fields() -> None:
    row = dict(
        zip(QOE_TELEMETRY_SAMPLES.column_names, QOE_TELEMETRY_SAMPLES.row(SAMPLE), strict=True)
    )

    assert row["startup_ms"] is None
    assert row["exited_before_start"] == 0
    assert row["error_code"] is None


def test_enums_become_their_symbol_and_booleans_integers() -> None:
    beat = IngestHealth(
        event_id="e",
        occurred_at=1,
        region="eu-west",
        source_id="p1",
        role=IngestRole.PACKAGER,
        content_id="c",
        beat_seq=3,
        last_segment_seq=-1,
        last_segment_at=0,
        status=IngestStatus.DEGRADED,
    )
    row = dict(zip(INGEST_HEALTH_BEATS.column_names, INGEST_HEALTH_BEATS.row(beat), strict=True))

    assert row["role"] == "PACKAGER" and type(row["role"]) is str
    assert row["status"] == "DEGRADED" and type(row["status"]) is str
    assert row["input_bitrate_kbps"] == 0
    flags = QOE_TELEMETRY_SAMPLES.row({**SAMPLE, "exited_before_start": True})
    assert flags[QOE_TELEMETRY_SAMPLES.column_names.index("exited_before_start")] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event_id": None}, "event_id must not be null"),
        ({"occurred_at": -1}, "outside UInt64"),
        ({"bitrate_kbps": 2**31}, "outside Int32"),
        ({"bitrate_kbps": "4500"}, "must be an integer"),
        ({"buffer_ms": True}, "must be an integer"),
        ({"country": 31}, "must be a string"),
        ({"exited_before_start": 1}, "must be a boolean"),
    ],
)
def test_values_that_do_not_fit_their_column_are_rejected(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecordRejected, match=message):
        QOE_TELEMETRY_SAMPLES.row({**SAMPLE, **change})


def test_a_missing_required_field_is_rejected() -> None:
    record = dict(SAMPLE)
    del record["content_id"]

    with pytest.raises(RecordRejected, match="content_id is missing"):
        QOE_TELEMETRY_SAMPLES.row(record)


def test_epoch_ms_fields_must_exist_in_the_schema() -> None:
    with pytest.raises(ValueError, match="no fields"):
        TableMapping.from_schema(
            "t", SCHEMA_DIR / "IngestHealth.avsc", epoch_ms_fields=("sampled_at",)
        )


def _migration_columns(table: str) -> list[tuple[str, str]]:
    sql = "\n".join(m.sql for m in load_migrations())
    match = re.search(
        rf"CREATE TABLE IF NOT EXISTS \$\{{database\}}\.{table}\s*\((.*?)\n\)", sql, re.S
    )
    assert match, f"no CREATE TABLE for {table} in the migrations"
    columns = [line.strip().rstrip(",") for line in match.group(1).splitlines() if line.strip()]
    found = [(c.split(" ", 1)[0], c.split(" ", 1)[1]) for c in columns]
    # Later migrations add columns: `ADD COLUMN name Type [DEFAULT ...]`, in order.
    for alter in re.finditer(rf"ALTER TABLE \$\{{database\}}\.{table}\s(.*?);", sql, re.S):
        found += re.findall(r"ADD COLUMN (\w+) (\S+)", alter.group(1))
    return found


@pytest.mark.parametrize("mapping", DEFAULT_ROUTES.values(), ids=lambda m: m.table)
def test_the_migrations_create_exactly_the_mapped_columns(mapping: TableMapping) -> None:
    assert _migration_columns(mapping.table) == [
        (c.name, c.clickhouse_type) for c in mapping.columns
    ]
