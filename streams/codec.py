"""Avro single-object encoding: `C3 01`, the CRC-64-AVRO fingerprint (little-endian), the body."""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streams.errors import DecodeError, EncodeError

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro spec's 64-bit Rabin fingerprint (CRC-64-AVRO) of data."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """The 8 little-endian bytes that follow `C3 01` for a schema: CRC-64-AVRO of its PCF."""
    canonical = to_parsing_canonical_form(dict(schema))
    return crc64_avro(canonical.encode()).to_bytes(8, "little")


class AvroEvent(Protocol):
    """What the generated event dataclasses look like to the codec."""

    SCHEMA_NAME: ClassVar[str]

    def to_avro(self) -> dict[str, Any]: ...

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self: ...


E = TypeVar("E", bound=AvroEvent)


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one event schema, as written on the wire."""

    name: str
    version: int
    fingerprint: bytes
    schema: dict[str, Any]
    parsed: Any
    current: bool


class SchemaStore:
    """Every schema version under schemas/: the current `.avsc` files and `history/`.

    Current schemas live at `schemas/<Name>.avsc`; earlier versions at
    `schemas/history/<Name>/v<N>.avsc`. The current version is one above the highest
    historical one.
    """

    def __init__(self, versions: Iterable[SchemaVersion]) -> None:
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._current: dict[str, SchemaVersion] = {}
        for version in versions:
            clash = self._by_fingerprint.get(version.fingerprint)
            if clash is not None and clash.name != version.name:
                raise EncodeError(
                    f"fingerprint clash between {clash.name} and {version.name}",
                    reason="fingerprint-clash",
                )
            if clash is None or version.current:
                self._by_fingerprint[version.fingerprint] = version
            if version.current:
                self._current[version.name] = version

    @classmethod
    def from_directory(cls, root: Path) -> SchemaStore:
        versions: list[SchemaVersion] = []
        for path in sorted(root.glob("*.avsc")):
            history = sorted(
                (root / "history" / path.stem).glob("v*.avsc"), key=lambda p: int(p.stem[1:])
            )
            for old in history:
                versions.append(_load_version(old, int(old.stem[1:]), current=False))
            versions.append(_load_version(path, len(history) + 1, current=True))
        return cls(versions)

    def current(self, name: str) -> SchemaVersion:
        try:
            return self._current[name]
        except KeyError as exc:
            raise EncodeError(f"no schema named {name}", reason="unknown-schema") from exc

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fingerprint)

    def names(self) -> list[str]:
        return sorted(self._current)

    def versions(self) -> list[SchemaVersion]:
        return list(self._by_fingerprint.values())


def _load_version(path: Path, version: int, *, current: bool) -> SchemaVersion:
    schema = json.loads(path.read_text())
    name = f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")
    return SchemaVersion(
        name=name,
        version=version,
        fingerprint=schema_fingerprint(schema),
        schema=schema,
        parsed=fastavro.parse_schema(schema),
        current=current,
    )


class AvroCodec:
    """Encodes events with their current schema; decodes any known version into the current one."""

    def __init__(self, store: SchemaStore, event_types: Mapping[str, type[AvroEvent]]) -> None:
        self._store = store
        self._types = dict(event_types)
        missing = set(self._types) - set(store.names())
        if missing:
            raise EncodeError(f"event types without a schema: {sorted(missing)}")

    @property
    def store(self) -> SchemaStore:
        return self._store

    def encode(self, event: AvroEvent) -> bytes:
        return self.encode_record(event.SCHEMA_NAME, event.to_avro())

    def encode_record(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """Encode a plain record (dict) under the current version of schema_name."""
        version = self._store.current(schema_name)
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(version.fingerprint)
        try:
            fastavro.schemaless_writer(out, version.parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EncodeError(
                f"{schema_name}: record does not match its schema: {exc}",
                reason="record-mismatch",
            ) from exc
        return out.getvalue()

    def decode_record(self, data: bytes) -> tuple[SchemaVersion, dict[str, Any]]:
        """Decode bytes into (the current schema version, a record resolved to it).

        Raises DecodeError with reason bad-magic, truncated, unknown-fingerprint,
        malformed-body or trailing-bytes.
        """
        if len(data) < HEADER_LEN:
            raise DecodeError(f"{len(data)} bytes is shorter than the header", reason="truncated")
        if data[:2] != MAGIC:
            raise DecodeError(f"expected marker c301, got {data[:2].hex()}", reason="bad-magic")
        fingerprint = data[2:HEADER_LEN]
        writer = self._store.by_fingerprint(fingerprint)
        if writer is None:
            raise DecodeError(
                f"no schema under schemas/ has fingerprint {fingerprint.hex()}",
                reason="unknown-fingerprint",
            )
        reader = self._store.current(writer.name)
        body = io.BytesIO(data)
        body.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(
                body, writer.parsed, None if writer.current else reader.parsed
            )
        except (EOFError, ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError) as exc:
            raise DecodeError(
                f"{writer.name} v{writer.version}: body does not decode: {exc!r}",
                reason="malformed-body",
            ) from exc
        except Exception as exc:  # fastavro raises SchemaResolutionError and others unpredictably
            raise DecodeError(
                f"{writer.name} v{writer.version}: {type(exc).__name__}: {exc}",
                reason="malformed-body",
            ) from exc
        if body.tell() != len(data):
            raise DecodeError(
                f"{writer.name}: {len(data) - body.tell()} bytes after the record",
                reason="trailing-bytes",
            )
        if not isinstance(record, dict):
            raise DecodeError(f"{writer.name}: not a record", reason="malformed-body")
        return reader, record

    def decode(self, data: bytes) -> AvroEvent:
        """Decode bytes into the event dataclass of the current schema."""
        version, record = self.decode_record(data)
        event_type = self._types.get(version.name)
        if event_type is None:
            raise DecodeError(f"no event type for {version.name}", reason="unknown-schema")
        try:
            return event_type.from_avro(record)
        except (TypeError, ValueError, KeyError) as exc:
            raise DecodeError(
                f"{version.name}: record does not build its event: {exc}",
                reason="malformed-body",
            ) from exc

    def decode_as(self, data: bytes, event_type: type[E]) -> E:
        """Decode and check the event is of event_type (reason wrong-event-type otherwise)."""
        event = self.decode(data)
        if not isinstance(event, event_type):
            raise DecodeError(
                f"expected {event_type.SCHEMA_NAME}, got {event.SCHEMA_NAME}",
                reason="wrong-event-type",
            )
        return event


@functools.cache
def default_codec() -> AvroCodec:
    """The codec for every event under schemas/ (current and historical versions)."""
    from schemas import SCHEMA_DIR
    from streams.events import EVENT_TYPES

    return AvroCodec(SchemaStore.from_directory(SCHEMA_DIR), EVENT_TYPES)
