"""Generates `streams/events.py` from `schemas/*.avsc`, so the two never drift."""

from __future__ import annotations

import json
import keyword
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.errors import EncodeError

PRIMITIVES = {
    "string": "str",
    "long": "int",
    "int": "int",
    "double": "float",
    "float": "float",
    "boolean": "bool",
    "bytes": "bytes",
}

HEADER = '''"""Event dataclasses, generated from schemas/*.avsc (`liveward schemas generate`)."""

# Generated file: edit the .avsc files and regenerate; a unit test fails if this drifts.

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar
'''


@dataclass
class _Conversion:
    """How one Avro type maps to Python: its annotation and to/from expressions."""

    annotation: str
    to_avro: str  # format string with {v}
    from_avro: str  # format string with {v}


@dataclass
class _Generator:
    enums: dict[str, list[str]] = field(default_factory=dict)
    records: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def conversion(self, avro_type: Any, namespace: str) -> _Conversion:
        if isinstance(avro_type, str):
            if avro_type in PRIMITIVES:
                return _Conversion(PRIMITIVES[avro_type], "{v}", "{v}")
            short = avro_type.rsplit(".", 1)[-1]
            if short in self.enums:
                return _Conversion(short, "{v}.value", short + "({v})")
            if short in self.records:
                return _Conversion(short, "{v}.to_avro()", short + ".from_avro({v})")
            raise EncodeError(f"unknown Avro type {avro_type}", reason="codegen")
        if isinstance(avro_type, list):
            others = [t for t in avro_type if t != "null"]
            if "null" not in avro_type or len(others) != 1:
                raise EncodeError(f"only [null, T] unions are supported: {avro_type}")
            inner = self.conversion(others[0], namespace)
            if inner.to_avro == "{v}":
                return _Conversion(f"{inner.annotation} | None", "{v}", "{v}")
            return _Conversion(
                f"{inner.annotation} | None",
                "None if {v} is None else " + inner.to_avro,
                "None if {v} is None else " + inner.from_avro,
            )
        kind = avro_type["type"]
        if kind == "enum":
            self.enums[avro_type["name"]] = list(avro_type["symbols"])
            return self.conversion(avro_type["name"], namespace)
        if kind == "record":
            self.record(avro_type, namespace)
            return self.conversion(avro_type["name"], namespace)
        if kind == "array":
            inner = self.conversion(avro_type["items"], namespace)
            if inner.to_avro == "{v}":
                return _Conversion(f"tuple[{inner.annotation}, ...]", "list({v})", "tuple({v})")
            to_item = inner.to_avro.format(v="item")
            from_item = inner.from_avro.format(v="item")
            return _Conversion(
                f"tuple[{inner.annotation}, ...]",
                f"[{to_item} for item in {{v}}]",
                f"tuple({from_item} for item in {{v}})",
            )
        if isinstance(kind, str | list | dict) and kind not in ("map", "fixed"):
            return self.conversion(kind, namespace)
        raise EncodeError(f"unsupported Avro type {avro_type}", reason="codegen")

    def record(self, schema: dict[str, Any], namespace: str) -> None:
        name = schema["name"]
        if name in self.records:
            return
        self.records[name] = ""  # placeholder so self-references resolve during recursion
        namespace = schema.get("namespace", namespace)
        lines = ["", "", "@dataclass(frozen=True, slots=True, kw_only=True)", f"class {name}:"]
        doc = schema.get("doc", name)
        lines.append(f'    """{doc}"""')
        lines.append("")
        lines.append(f'    SCHEMA_NAME: ClassVar[str] = "{namespace}.{name}"')
        to_lines, from_lines = [], []
        for fld in schema["fields"]:
            fname = fld["name"]
            if keyword.iskeyword(fname):
                raise EncodeError(f"{name}.{fname} is a Python keyword", reason="codegen")
            conv = self.conversion(fld["type"], namespace)
            default = ""
            if "default" in fld:
                default = " = " + _python_default(fld["default"], conv.annotation)
            lines.append(f"    {fname}: {conv.annotation}{default}")
            to_lines.append(f'            "{fname}": {conv.to_avro.format(v="self." + fname)},')
            source = f'record["{fname}"]'
            from_lines.append(f"            {fname}={conv.from_avro.format(v=source)},")
        lines += [
            "",
            "    def to_avro(self) -> dict[str, Any]:",
            "        return {",
            *to_lines,
            "        }",
            "",
            "    @classmethod",
            f"    def from_avro(cls, record: Mapping[str, Any]) -> {name}:",
            "        return cls(",
            *from_lines,
            "        )",
        ]
        self.records[name] = "\n".join(lines)
        self.order.append(name)

    def render(self, top_level: list[str]) -> str:
        parts = [HEADER]
        for enum_name, symbols in self.enums.items():
            parts.append(f"\n\nclass {enum_name}(StrEnum):")
            parts += [f'    {sym} = "{sym}"' for sym in symbols]
        parts += [self.records[name] for name in self.order]
        parts.append("\n")
        parts.append("Event = " + " | ".join(top_level))
        parts.append("")
        parts.append("EVENT_TYPES: dict[str, type[Event]] = {")
        parts += [f"    {name}.SCHEMA_NAME: {name}," for name in top_level]
        parts.append("}")
        return "\n".join(parts) + "\n"


def _python_default(value: Any, annotation: str) -> str:
    if isinstance(value, list):
        if value:
            raise EncodeError("non-empty array defaults are not supported", reason="codegen")
        return "()"
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        enum = annotation.split(" ", maxsplit=1)[0]
        return f"{enum}.{value}" if enum[:1].isupper() else repr(value)
    raise EncodeError(f"unsupported default {value!r}", reason="codegen")


def write_events_module(schema_dir: Path, target: Path) -> None:
    """Write the generated module to target, formatted by ruff (a dev dependency)."""
    target.write_text(render_events_module(schema_dir))
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(target)], check=True)


def render_events_module(schema_dir: Path) -> str:
    """The source text of streams/events.py for the current schemas in schema_dir."""
    generator = _Generator()
    top_level = []
    for path in sorted(schema_dir.glob("*.avsc")):
        schema = json.loads(path.read_text())
        generator.record(schema, schema.get("namespace", ""))
        top_level.append(schema["name"])
    return generator.render(top_level)
