"""The bulk loader's file reading: JSON lines and CSV, every bad line reported by its number."""

from __future__ import annotations

from services.auth.bulk import detect_format, parse_subscribers, to_events
from services.auth.subscribers import validate_record

JSONL = """\
{"viewer_id": "v1", "packages": ["sports"], "device_classes": ["tv"], "home_country": "DE"}

{"viewer_id": "v2", "device_classes": ["toaster"]}
{not json
["a list"]
{"viewer_id": "v1", "device_classes": ["web"]}
{"viewer_id": "v3", "content_ids": ["news/live"], "device_classes": ["web", "tv"]}
"""

CSV = """\
viewer_id,packages,content_ids,device_classes,max_concurrent_streams,home_country,active
v1,sports;news,,tv;web,2,DE,yes
v2,,"movies/one",tv,two,,
v3,,,tv,,,maybe
v4,"sports",,tv,1,SE,false
v5,too,few
"""


def test_json_lines_are_parsed_and_bad_lines_named() -> None:
    parsed = parse_subscribers(JSONL.splitlines(keepends=True), "jsonl")
    assert [r.viewer_id for r in parsed.records] == ["v1", "v3"]
    assert [(e.line, e.message.split(":")[0]) for e in parsed.errors] == [
        (3, "unknown device classes ['toaster']; known"),
        (4, "not JSON"),
        (5, "not a JSON object"),
        (6, "viewer v1 is also on line 1"),
    ]


def test_csv_cells_become_lists_numbers_and_booleans() -> None:
    parsed = parse_subscribers(CSV.splitlines(keepends=True), "csv")
    v1, v4 = parsed.records
    assert v1.packages == ("news", "sports") and v1.device_classes == ("tv", "web")
    assert (v1.max_concurrent_streams, v1.home_country, v1.active) == (2, "DE", True)
    assert (v4.viewer_id, v4.active) == ("v4", False)
    assert [(e.line, e.message) for e in parsed.errors] == [
        (3, "max_concurrent_streams must be an integer"),
        (4, "active must be true or false"),
        (6, "3 cells, the header has 7"),
    ]


def test_a_csv_header_with_unknown_columns_is_refused_at_line_one() -> None:
    parsed = parse_subscribers(["viewer_id,colour\n", "v1,blue\n"], "csv")
    assert not parsed.records
    assert parsed.errors[0].line == 1 and "colour" in parsed.errors[0].message


def test_the_format_comes_from_the_name_or_the_first_line() -> None:
    assert detect_format("subs.jsonl", "viewer_id,x") == "jsonl"
    assert detect_format("subs.csv", "{") == "csv"
    assert detect_format("subs.txt", '  {"viewer_id": "v"}') == "jsonl"
    assert detect_format("subs", "viewer_id,packages") == "csv"


def test_loaded_records_keep_each_viewers_session_version() -> None:
    record = validate_record("v1", {"device_classes": ["tv"]})
    existing = record.to_event(event_id="e", occurred_at=1, region="r", session_version=7)
    events = to_events(
        [record, validate_record("v2", {"device_classes": ["tv"]})],
        {"v1": existing}.get,
        now_ms=5,
        region="eu-west",
        new_id=lambda: "id",
    )
    assert [(e.viewer_id, e.session_version, e.occurred_at) for e in events] == [
        ("v1", 7, 5),
        ("v2", 0, 5),
    ]
