"""Schema evolution rules (backward compatible only) and the stored samples of earlier versions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro

from streams.codec import MAGIC, SchemaStore, SchemaVersion

SAMPLE_SUFFIX = ".bin"


def compatibility_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why a reader on `new` could not read data written with `old` (empty if it can).

    Backward compatible here means: every field new adds has a default, and no field
    keeps its name but changes its type.
    """
    problems = []
    old_fields = {f["name"]: f for f in old["fields"]}
    for field in new["fields"]:
        previous = old_fields.get(field["name"])
        if previous is None:
            if "default" not in field:
                problems.append(f"{new['name']}.{field['name']} is new and has no default")
        elif _type_name(previous["type"]) != _type_name(field["type"]):
            problems.append(
                f"{new['name']}.{field['name']} changed type "
                f"{_type_name(previous['type'])} -> {_type_name(field['type'])}"
            )
    return problems


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "array":
            return f"array<{_type_name(avro_type['items'])}>"
        return str(avro_type.get("name", kind))
    if isinstance(avro_type, list):
        return "|".join(_type_name(t) for t in avro_type)
    return str(avro_type).rsplit(".", 1)[-1]


def example_record(schema: Any) -> Any:
    """A deterministic record for schema, with every field filled (no defaults left)."""
    if isinstance(schema, list):
        others = [t for t in schema if t != "null"]
        return example_record(others[0]) if others else None
    if isinstance(schema, str):
        return {
            "string": "sample",
            "long": 1_700_000_000_000,
            "int": 42,
            "double": 0.5,
            "float": 0.25,
            "boolean": True,
            "bytes": b"\x01\x02",
            "null": None,
        }[schema]
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: example_record(f["type"]) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "array":
        return [example_record(schema["items"])]
    return example_record(kind)


def encode_sample(version: SchemaVersion) -> bytes:
    """Single-object bytes of the example record written with exactly this version."""
    out = io.BytesIO()
    out.write(MAGIC + version.fingerprint)
    fastavro.schemaless_writer(out, version.parsed, example_record(version.schema))
    return out.getvalue()


def sample_path(sample_dir: Path, version: SchemaVersion) -> Path:
    return sample_dir / f"{version.name.rsplit('.', 1)[-1]}-v{version.version}{SAMPLE_SUFFIX}"


def write_missing_samples(store: SchemaStore, sample_dir: Path) -> list[Path]:
    """Store a sample for every schema version that has none yet; existing ones are kept."""
    sample_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for version in store.versions():
        path = sample_path(sample_dir, version)
        if not path.exists():
            path.write_bytes(encode_sample(version))
            written.append(path)
    return written
