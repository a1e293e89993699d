"""License log test fixtures: a signing key, a log opener, entries as the sink writes them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sinks.worm.entries import LogEntry
from sinks.worm.log import LocalLog
from streams.codec import default_codec
from streams.events import LicenseDecision, LicenseIssued

ORIGIN = "liveward/license-log/test"


def make_license_entry(offset: int, *, partition: int = 0) -> LogEntry:
    """The log entry of a granted license at Kafka (partition, offset)."""
    event = LicenseIssued(
        event_id=str(uuid.uuid4()),
        occurred_at=1_718_000_000_000 + offset,
        region="eu-west",
        license_id=f"lic-{offset}",
        viewer_ref=f"viewer-{offset % 7}",
        session_id=f"session-{offset % 11}",
        content_id="match-of-the-day",
        key_ids=("k-cur", "k-next"),
        protocol="clearkey-rest",
        decision=LicenseDecision.GRANTED,
        reason="ok",
        latency_us=800 + offset,
    )
    return LogEntry(partition, offset, 1_718_000_000_000 + offset, default_codec().encode(event))


EntryFactory = Callable[..., LogEntry]


@pytest.fixture
def license_entry() -> EntryFactory:
    """`license_entry(offset, partition=0)`: an entry as the sink would append it."""
    return make_license_entry


@pytest.fixture
def origin() -> str:
    return ORIGIN


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


OpenLog = Callable[..., LocalLog]


@pytest.fixture
def open_log(tmp_path: Path, signing_key: Ed25519PrivateKey) -> OpenLog:
    """Opens the test's log directory as its writer; a fake clock ticks 1 s per checkpoint."""
    ticks = iter(range(1_718_000_000_000, 1_718_000_000_000 + 10**9, 1000))

    def opener(**options: object) -> LocalLog:
        settings: dict[str, object] = {"segment_records": 4, "clock": lambda: next(ticks)}
        settings.update(options)
        return LocalLog(tmp_path / "log", origin=ORIGIN, signing_key=signing_key, **settings)  # type: ignore[arg-type]

    return opener
