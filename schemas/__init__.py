"""Avro event schemas: one `.avsc` per event, the only definition of an event."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent

SAMPLE_DIR = SCHEMA_DIR / "samples"
