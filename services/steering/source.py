"""Where the steering service reads from: the control plane's steering state, live streams.

One small interface, a Kafka implementation (compacted topics read into memory and
followed) and an in-memory one for tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from liveward.settings import Settings
from streams.events import PackagerManifestState, SteeringState
from streams.meta import now_ms
from streams.views import CompactedTopicView

STEERING_TOPIC = "control.steering"
MANIFEST_STATE_TOPIC = "ingest.manifest-state"


class SteeringSource(Protocol):
    def entry(self, content_id: str) -> SteeringState | None:
        """The published steering state of a content id ('*': the default), if any."""

    def is_live(self, content_id: str) -> bool:
        """True if a packager publishes this stream in some region."""

    def ready(self) -> bool: ...


class InMemorySteeringSource:
    """A SteeringSource held in dicts, for tests and tools."""

    def __init__(self) -> None:
        self.entries: dict[str, SteeringState] = {}
        self.live: set[str] = set()

    def entry(self, content_id: str) -> SteeringState | None:
        return self.entries.get(content_id)

    def is_live(self, content_id: str) -> bool:
        return content_id in self.live

    def ready(self) -> bool:
        return True


class KafkaSteeringSource:
    """`control.steering` and `ingest.manifest-state`, each read from the start and followed.

    `on_update(state, lag_ms)` is called for every steering state that arrives once the
    view has caught up: lag_ms is how long after its decision it became servable here.
    """

    def __init__(self, settings: Settings) -> None:
        self.on_update: Callable[[SteeringState, int], None] | None = None
        self._live: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._steering: CompactedTopicView[SteeringState] = CompactedTopicView(
            settings, STEERING_TOPIC, SteeringState, on_change=self._steering_changed
        )
        self._manifests: CompactedTopicView[PackagerManifestState] = CompactedTopicView(
            settings, MANIFEST_STATE_TOPIC, PackagerManifestState, on_change=self._manifest_changed
        )

    def start(self, timeout: float) -> None:
        self._steering.start(timeout)
        self._manifests.start(timeout)

    def wait_ready(self, timeout: float) -> bool:
        return self._steering.wait_ready(timeout) and self._manifests.wait_ready(timeout)

    def ready(self) -> bool:
        return self._steering.ready() and self._manifests.ready()

    def entry(self, content_id: str) -> SteeringState | None:
        return self._steering.get(content_id)

    def is_live(self, content_id: str) -> bool:
        with self._lock:
            return bool(self._live.get(content_id))

    def close(self) -> None:
        self._steering.close()
        self._manifests.close()

    def _steering_changed(self, _key: str, state: SteeringState | None) -> None:
        if state is not None and self.on_update is not None and self._steering.ready():
            self.on_update(state, now_ms() - state.occurred_at)

    def _manifest_changed(self, key: str, state: PackagerManifestState | None) -> None:
        # Keys are "<content>|<region>"; a tombstone retires one region's copy of a stream.
        content_id, _, region = key.partition("|")
        with self._lock:
            regions = self._live.setdefault(content_id, set())
            if state is None:
                regions.discard(region)
            else:
                regions.add(region)
