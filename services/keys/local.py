"""This region's key store and rotator, wired to Kafka: what the CLI and the console use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from liveward.settings import Settings
from services.keys.errors import KeyHierarchyError
from services.keys.keystore import KeyStore
from services.keys.kms import local_keks_of_every_region
from services.keys.rotation import Rotator
from services.keys.timeline import RotationPolicy
from streams.producer import EventProducer


@contextmanager
def caught_up_key_store(settings: Settings, timeout: float) -> Iterator[KeyStore]:
    """This region's KeyStore, caught up with keys.epochs; KeyHierarchyError
    `epochs-unreadable` if it cannot be read to its end within timeout."""
    keys = KeyStore(settings)
    try:
        keys.start(timeout)
        if not keys.wait_ready(timeout):
            raise KeyHierarchyError(
                f"keys.epochs was not read to its end within {timeout:g} s",
                reason="epochs-unreadable",
            )
        yield keys
    finally:
        keys.close()


@contextmanager
def local_rotator(
    settings: Settings,
    timeout: float,
    policy: RotationPolicy,
    contents: Sequence[str] | None = None,
) -> Iterator[Rotator]:
    """A Rotator over this region's caught-up key store, the local KEKs of every region
    and a producer of its own, announcing periods for `contents`."""
    fixed = list(dict.fromkeys(contents or ()))
    with caught_up_key_store(settings, timeout) as keys:
        producer = EventProducer(settings)
        try:
            yield Rotator(
                keys,
                local_keks_of_every_region(settings),
                producer,
                policy=policy,
                contents=lambda: fixed,
            )
        finally:
            producer.close()
