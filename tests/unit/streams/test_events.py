"""The event dataclasses are exactly what schemas/ generates: they can never drift."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import SCHEMA_DIR
from streams import events
from streams.catalog import CATALOG
from streams.codegen import render_events_module


def test_events_module_is_up_to_date(tmp_path: Path) -> None:
    target = tmp_path / "events.py"
    target.write_text(render_events_module(SCHEMA_DIR))
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(target)], check=True)
    assert target.read_text() == Path(events.__file__).read_text(), (
        "streams/events.py is stale: run `liveward schemas generate`"
    )


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.stem)
def test_dataclass_fields_match_schema_fields(path: Path) -> None:
    schema = json.loads(path.read_text())
    cls = events.EVENT_TYPES[f"liveward.{schema['name']}"]
    assert [f.name for f in dataclasses.fields(cls)] == [f["name"] for f in schema["fields"]]
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_every_event_has_identity_time_and_region() -> None:
    for cls in events.EVENT_TYPES.values():
        names = [f.name for f in dataclasses.fields(cls)][:3]
        assert names == ["event_id", "occurred_at", "region"], cls.SCHEMA_NAME


def test_every_event_but_the_older_qoe_records_has_a_topic() -> None:
    # A QoETelemetrySample is a block's sample as analytics see it; it and
    # QoETelemetryBatch are what qoe.telemetry carried before blocks, still readable.
    with_topic = {spec.event_type for spec in CATALOG}
    assert set(events.EVENT_TYPES.values()) - with_topic == {
        events.QoETelemetrySample,
        events.QoETelemetryBatch,
    }
    assert with_topic <= set(events.EVENT_TYPES.values())
