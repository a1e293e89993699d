"""The Faust topic handles for catalog topics (raw bytes in and out; the Avro codec decodes)."""

from __future__ import annotations

from typing import Any

import faust

from streams.catalog import CATALOG


def catalog_topic(app: faust.App, name: str) -> Any:
    """A Faust topic for a catalog topic, with the catalog's partition count."""
    spec = CATALOG[name]
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        internal=False,
    )
