"""Reading subscriber files for the bulk loader: JSON lines or CSV, errors by line number. Pure.

JSON lines: one object per line with `viewer_id` and the fields of `PUT
/v1/subscribers/{viewer_id}`. CSV: a header row naming `viewer_id` and any of those
fields; list cells (`packages`, `content_ids`, `device_classes`) separate items with
`;`, `active` is true/false (yes/no, 1/0), and an empty cell means the field's default.
A viewer listed twice is an error: a file that says two things about one viewer is
more likely a mistake than an update.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from services.auth.errors import SubscriberInvalid
from services.auth.subscribers import RECORD_FIELDS, SubscriberRecord, validate_record
from streams.events import SubscriberEntitlements

FileFormat = Literal["jsonl", "csv"]

LIST_FIELDS = ("packages", "content_ids", "device_classes")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


@dataclass(frozen=True, slots=True)
class LineError:
    """A line of the file that cannot be loaded, and why."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ParsedFile:
    records: list[SubscriberRecord]
    errors: list[LineError]


def detect_format(name: str, first_line: str) -> FileFormat:
    """JSON lines for .jsonl/.ndjson/.json or content starting with `{`; else CSV."""
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def _json_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, LineError(number, f"not JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(row, dict):
            yield number, LineError(number, "not a JSON object")
            continue
        yield number, row


def _csv_cell(name: str, cell: str) -> object:
    if name in LIST_FIELDS:
        return [item.strip() for item in cell.split(";") if item.strip()]
    if name == "max_concurrent_streams":
        try:
            return int(cell)
        except ValueError:
            return cell  # validate_record explains what is wrong with it
    if name == "active":
        lowered = cell.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return cell
    return cell.strip()


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    reader = csv.reader(lines)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    known = RECORD_FIELDS | {"viewer_id"}
    unknown = [name for name in header if name not in known]
    if "viewer_id" not in header or unknown:
        problem = f"unknown columns {unknown}" if unknown else "no viewer_id column"
        yield 1, LineError(1, f"header: {problem}; columns are {sorted(known)}")
        return
    for cells in reader:
        # line_num is the physical line the row ended on (quoted cells may span lines).
        number = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield number, LineError(number, f"{len(cells)} cells, the header has {len(header)}")
            continue
        yield (
            number,
            {name: _csv_cell(name, cell) for name, cell in zip(header, cells, strict=True) if cell},
        )


def parse_subscribers(lines: Iterable[str], file_format: FileFormat) -> ParsedFile:
    """Every valid record, and an error for every line that is not one."""
    rows = _json_rows(lines) if file_format == "jsonl" else _csv_rows(lines)
    records: list[SubscriberRecord] = []
    errors: list[LineError] = []
    first_seen: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, LineError):
            errors.append(row)
            continue
        fields = dict(row)
        viewer_id = fields.pop("viewer_id", None)
        try:
            record = validate_record(viewer_id, fields)
        except SubscriberInvalid as exc:
            errors.append(LineError(number, str(exc)))
            continue
        if record.viewer_id in first_seen:
            errors.append(
                LineError(number, f"viewer {record.viewer_id} is also on line "
                                  f"{first_seen[record.viewer_id]}")
            )  # fmt: skip
            continue
        first_seen[record.viewer_id] = number
        records.append(record)
    return ParsedFile(records, errors)


def to_events(
    records: Iterable[SubscriberRecord],
    current: Callable[[str], SubscriberEntitlements | None],
    *,
    now_ms: int,
    region: str,
    new_id: Callable[[], str],
) -> list[SubscriberEntitlements]:
    """The events that store records; each viewer keeps its current session version.

    Carrying the version over matters: a reload must not bring back tokens that a
    viewer revocation made stale.
    """
    events = []
    for record in records:
        existing = current(record.viewer_id)
        events.append(
            record.to_event(
                event_id=new_id(),
                occurred_at=now_ms,
                region=region,
                session_version=existing.session_version if existing is not None else 0,
            )
        )
    return events
