"""Schema evolution: every stored sample of every version stays decodable by today's code."""

from __future__ import annotations

import json

import pytest

from schemas import SAMPLE_DIR, SCHEMA_DIR
from streams.codec import default_codec
from streams.evolution import compatibility_problems, sample_path

STORE = default_codec().store
VERSIONS = sorted(STORE.versions(), key=lambda v: (v.name, v.version))


def test_every_schema_version_has_a_stored_sample() -> None:
    missing = [v.name for v in VERSIONS if not sample_path(SAMPLE_DIR, v).exists()]
    assert not missing, "run `liveward schemas samples` after adding a schema version"


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"{v.name}-v{v.version}")
def test_stored_sample_decodes_into_the_current_event(version: object) -> None:
    data = sample_path(SAMPLE_DIR, version).read_bytes()  # type: ignore[arg-type]
    event = default_codec().decode(data)
    assert version.name == event.SCHEMA_NAME  # type: ignore[attr-defined]


def test_fields_added_since_v1_take_their_defaults() -> None:
    event = default_codec().decode((SAMPLE_DIR / "IngestHealth-v1.bin").read_bytes())
    assert event.input_bitrate_kbps == 0  # type: ignore[attr-defined]
    old_token = default_codec().decode((SAMPLE_DIR / "TokenIssued-v1.bin").read_bytes())
    assert old_token.renewed_from is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", sorted((SCHEMA_DIR / "history").glob("*/v*.avsc")), ids=str)
def test_current_schema_is_backward_compatible_with_history(path: object) -> None:
    old = json.loads(path.read_text())  # type: ignore[attr-defined]
    new = json.loads((SCHEMA_DIR / f"{old['name']}.avsc").read_text())
    assert compatibility_problems(old, new) == []


def test_a_new_field_without_default_is_incompatible() -> None:
    old = json.loads((SCHEMA_DIR / "KeyRotated.avsc").read_text())
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "added", "type": "string"})
    assert compatibility_problems(old, new) == ["KeyRotated.added is new and has no default"]


def test_changing_a_field_type_is_incompatible() -> None:
    old = json.loads((SCHEMA_DIR / "KeyRotated.avsc").read_text())
    new = json.loads(json.dumps(old))
    new["fields"][-1]["type"] = "string"
    assert compatibility_problems(old, new)
