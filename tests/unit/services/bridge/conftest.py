"""A bridge in process: real geo databases and codec, an in-memory log and keyring, a set clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.access.demo_geo import GeoDatabases, write_geo_databases
from services.access.geo import GeoResolver
from services.bridge.app import create_bridge_app
from services.bridge.bridge import TelemetryBridge
from services.bridge.epochs import InMemoryKeyring
from services.bridge.memory import InMemoryRecordLog
from services.bridge.records import BlockEncoder
from services.bridge.settings import BridgeSettings
from streams.catalog import CATALOG
from streams.codec import default_codec
from streams.telemetry import samples_of_record

NOW_MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z
SE_IP = "89.160.20.112"  # Stockholm in the test databases (SE, subdivision E)
PARTITIONS = CATALOG["qoe.telemetry"].partitions
PROXY_IP = "10.0.0.2"
MAX_BODY = 200_000


def sample(**changes: Any) -> dict[str, Any]:
    """A valid JSON sample; changes replace fields (None removes one)."""
    item: dict[str, Any] = {
        "id": "s-1",
        "viewer": "viewer-123",
        "session": "session-abc",
        "content": "sports/final",
        "cdn": "cdn-a",
        "sampled_at": NOW_MS - 1_000,
        "bitrate_kbps": 4_500,
        "buffer_ms": 12_000,
        "play_ms": 1_000,
        "rebuffer_count": 1,
        "rebuffer_ms": 250,
    }
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


@dataclass
class Clock:
    """Wall clock (ms) and monotonic clock (s) a test moves by hand."""

    wall_ms: int = NOW_MS
    mono: float = 1_000.0

    def advance(self, seconds: float) -> None:
        self.wall_ms += int(seconds * 1000)
        self.mono += seconds


@dataclass
class Harness:
    """The bridge, its app's client, and what it wrote."""

    bridge: TelemetryBridge
    client: TestClient
    log: InMemoryRecordLog
    keys: InMemoryKeyring
    clock: Clock
    decoded: Callable[[], list[dict[str, Any]]] = field(repr=False)


@pytest.fixture(scope="session")
def geo_databases(tmp_path_factory: pytest.TempPathFactory) -> GeoDatabases:
    return write_geo_databases(tmp_path_factory.mktemp("bridge-geo"))


@pytest.fixture
def make_bridge(geo_databases: GeoDatabases) -> Iterator[Callable[..., Harness]]:
    """Build a bridge with some settings changed; every one built is closed afterwards."""
    opened: list[tuple[GeoResolver, TestClient]] = []
    codec = default_codec()

    def build(client_ip: str = SE_IP, **changes: Any) -> Harness:
        settings = BridgeSettings(**changes)
        geo = GeoResolver(geo_databases.city, geo_databases.asn, geo_databases.anonymous)
        log, keys, clock = InMemoryRecordLog(), InMemoryKeyring(), Clock()
        counter = itertools.count()
        bridge = TelemetryBridge(
            region="eu-west",
            settings=settings,
            trusted_proxies=(f"{PROXY_IP}/32",),
            keys=keys,
            encoder=BlockEncoder(codec, PARTITIONS),
            log=log,
            geo=geo,
            clock_ms=lambda: clock.wall_ms,
            monotonic=lambda: clock.mono,
            entropy=lambda n: next(counter).to_bytes(n, "big"),
        )
        app = create_bridge_app(bridge, max_body_bytes=MAX_BODY)
        client = TestClient(app, client=(client_ip, 40_000))
        opened.append((geo, client))

        def decoded() -> list[dict[str, Any]]:
            """Every sample in the log, joined with what its batch shares."""
            return [
                sample.to_avro()
                for _, _, value in log.records
                if value
                for sample in samples_of_record(codec.decode_record(value)[1])
            ]

        return Harness(bridge, client, log, keys, clock, decoded)

    yield build
    for geo, client in opened:
        client.close()
        geo.close()


@pytest.fixture
def harness(make_bridge: Callable[..., Harness]) -> Harness:
    return make_bridge()
