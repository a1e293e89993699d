"""How an event becomes a table row: columns derived from the event's `.avsc`, values checked.

Columns carry the schema's field names in the schema's order. Avro types map to types both
ClickHouse 18.16 and chdb accept: epoch-millisecond longs become UInt64 (no DateTime64),
booleans UInt8, enums String (a new symbol must not need an ALTER), `["null", T]` Nullable.
Values are checked when a record is added, so one bad record is rejected on its own
instead of failing the whole batch at insert time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from schemas import SCHEMA_DIR
from sinks.errors import RecordRejected
from streams.errors import DecodeError
from streams.telemetry import samples_of_record, telemetry_samples

_MISSING: Any = object()

_INT_RANGES: dict[str, tuple[int, int]] = {
    "UInt8": (0, 2**8 - 1),
    "UInt64": (0, 2**64 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
}


# The checks run for every value of every row: exact-type tests come first because
# they are the common case and much cheaper than isinstance against unions or ABCs.


def _check_string(name: str, value: object) -> object:
    if type(value) is str:
        return value
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str):
        raise RecordRejected(f"{name} must be a string, got {type(value).__name__}")
    return str(value)


def _int_checker(clickhouse_type: str) -> Callable[[str, object], object]:
    low, high = _INT_RANGES[clickhouse_type]

    def check(name: str, value: object) -> object:
        if type(value) is not int:
            raise RecordRejected(f"{name} must be an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise RecordRejected(f"{name}={value} is outside {clickhouse_type}")
        return value

    return check


def _check_bool(name: str, value: object) -> object:
    if not isinstance(value, bool):
        raise RecordRejected(f"{name} must be a boolean, got {type(value).__name__}")
    return int(value)


def _check_float(name: str, value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordRejected(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Column:
    """One column: the event field it holds, its ClickHouse type, how its values are checked."""

    name: str
    clickhouse_type: str
    check: Callable[[str, object], object] = field(repr=False, compare=False)
    nullable: bool = False
    default: Any = field(default=_MISSING, repr=False, compare=False)

    def value(self, found: object) -> object:
        """The value to store for what the record holds in this field (`_MISSING` if absent)."""
        if found is None:
            if not self.nullable:
                raise RecordRejected(f"{self.name} must not be null")
            return None
        if found is _MISSING:
            raise RecordRejected(f"{self.name} is missing")
        return self.check(self.name, found)


def column_for(avro_field: Mapping[str, Any], *, epoch_ms: bool = False) -> Column:
    """The column for one Avro record field; `epoch_ms` longs become UInt64."""
    name = str(avro_field["name"])
    avro_type = avro_field["type"]
    nullable = False
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        if len(branches) != 1 or len(avro_type) != 2:
            raise ValueError(f"{name}: only [null, T] unions map to a column, got {avro_type}")
        nullable, avro_type = True, branches[0]
    base, check = _base_type(name, avro_type, epoch_ms=epoch_ms)
    clickhouse_type = f"Nullable({base})" if nullable else base
    default = avro_field.get("default", _MISSING)
    return Column(name, clickhouse_type, check, nullable=nullable, default=default)


def _base_type(
    name: str, avro_type: object, *, epoch_ms: bool
) -> tuple[str, Callable[[str, object], object]]:
    if isinstance(avro_type, Mapping) and avro_type.get("type") == "enum":
        return "String", _check_string
    if avro_type == "long":
        base = "UInt64" if epoch_ms else "Int64"
        return base, _int_checker(base)
    simple: dict[object, tuple[str, Callable[[str, object], object]]] = {
        "string": ("String", _check_string),
        "int": ("Int32", _int_checker("Int32")),
        "boolean": ("UInt8", _check_bool),
        "double": ("Float64", _check_float),
    }
    if avro_type in simple:
        return simple[avro_type]
    raise ValueError(f"{name}: Avro type {avro_type!r} has no column mapping")


@dataclass(frozen=True, slots=True)
class TableMapping:
    """Which table one event type lands in, and how its records become rows.

    `unpack`, if set, turns one record of the topic into the records that are rows (a
    `qoe.telemetry` batch into its samples).
    """

    table: str
    schema_name: str
    columns: tuple[Column, ...]
    unpack: Callable[[object], Iterable[object]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def row(self, record: Mapping[str, Any] | object) -> tuple[object, ...]:
        """The row for record (a mapping of the schema's fields, or an event dataclass), in
        `column_names` order; RecordRejected if a value is missing or does not fit."""
        if isinstance(record, dict | Mapping):
            get = record.get
            return tuple(c.value(get(c.name, c.default)) for c in self.columns)
        return tuple(c.value(getattr(record, c.name, c.default)) for c in self.columns)

    def rows(self, record: Mapping[str, Any] | object) -> list[tuple[object, ...]]:
        """The rows one topic record becomes: one, or one per record `unpack` gives.
        RecordRejected if any of them does not fit (then none is kept)."""
        if self.unpack is None:
            return [self.row(record)]
        return [self.row(part) for part in self.unpack(record)]

    @classmethod
    def from_schema(
        cls,
        table: str,
        schema_file: Path,
        *,
        epoch_ms_fields: Iterable[str] = ("occurred_at",),
        unpack: Callable[[object], Iterable[object]] | None = None,
    ) -> TableMapping:
        """A mapping with one column per field of the `.avsc` at schema_file."""
        schema = json.loads(schema_file.read_text())
        epoch_ms = set(epoch_ms_fields)
        unknown = epoch_ms - {f["name"] for f in schema["fields"]}
        if unknown:
            raise ValueError(f"{schema_file.name} has no fields {sorted(unknown)}")
        columns = tuple(column_for(f, epoch_ms=f["name"] in epoch_ms) for f in schema["fields"])
        return cls(table, f"{schema['namespace']}.{schema['name']}", columns, unpack)


def _telemetry_samples(record: object) -> list[object]:
    """The samples of a `qoe.telemetry` record: a block's (or an older batch's), or a
    single (older) sample. RecordRejected if a block's columns do not add up."""
    try:
        if isinstance(record, Mapping):
            if "sample_count" in record or "samples" in record:
                return list(samples_of_record(record))
            return [record]  # a single sample: its row fills what it lacks from defaults
        samples = telemetry_samples(record)
    except DecodeError as exc:
        raise RecordRejected(str(exc), reason=exc.reason) from exc
    return [record] if samples is None else list(samples)


QOE_TELEMETRY_SAMPLES = TableMapping.from_schema(
    "qoe_telemetry_samples",
    SCHEMA_DIR / "QoETelemetrySample.avsc",
    epoch_ms_fields=("occurred_at", "sampled_at"),
    unpack=_telemetry_samples,
)
INGEST_HEALTH_BEATS = TableMapping.from_schema(
    "ingest_health_beats",
    SCHEMA_DIR / "IngestHealth.avsc",
    epoch_ms_fields=("occurred_at", "last_segment_at"),
)
QOE_AGGREGATES = TableMapping.from_schema(
    "qoe_aggregates",
    SCHEMA_DIR / "QoEAggregate.avsc",
    epoch_ms_fields=("occurred_at", "window_start", "window_end"),
)

# Which topic's events land in which table.
DEFAULT_ROUTES: Mapping[str, TableMapping] = {
    "qoe.telemetry": QOE_TELEMETRY_SAMPLES,
    "ingest.health": INGEST_HEALTH_BEATS,
    "qoe.aggregates": QOE_AGGREGATES,
}
