"""A region's content keys: follows `keys.epochs`, unwraps its own copies, derives on demand.

`EpochKeys` is the in-memory part (fed `KeyEpoch` events by hand: tests, tools);
`KeyStore` feeds it from the compacted topic. Both answer the same questions:

- `content_key(content_id, period)`: the key of one period of one content, from the
  epoch in force for that period (see `timeline`);
- `current_and_next(content_id, now_ms)`: the two keys one license carries;
- `key_by_id(key_id, content_id=...)`: which key a key id names, or None;
- `period_at(t_ms)`: the period a time falls in, on the epochs' grid.

Every region keeps every epoch in its timeline, even one it cannot unwrap (that epoch's
periods then fail as `epoch-unavailable` rather than silently falling back to an older
epoch, which would hand out keys no other region agrees with).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from liveward.settings import Settings
from services.keys.derivation import EpochSecret, parse_key_id
from services.keys.epochs import unwrap_master_key
from services.keys.errors import KeyHierarchyError, UnwrapFailed
from services.keys.kms import KeyEncryptionKeys, local_keks
from services.keys.schedule import KeyPeriod
from services.keys.timeline import (
    EpochInfo,
    epoch_for_period,
    epoch_in_force,
    in_order,
    invalid_reason,
)
from streams.events import KeyEpoch
from streams.meta import now_ms
from streams.views import CompactedTopicView

log = logging.getLogger(__name__)

EPOCHS_TOPIC = "keys.epochs"
# key_by_id looks this far back for a content's key ids (DVR windows, late players).
DEFAULT_LOOKBACK_SECONDS = 3_600
# Derived keys kept for key_by_id and repeat requests; cleared whenever an epoch changes.
MAX_CACHED_KEYS = 50_000


@dataclass(frozen=True, slots=True)
class ContentKey:
    """The key of one period of one content. `key` never shows in `repr` or logs."""

    content_id: str
    period: int
    key_id: str  # 32 lowercase hex digits (16 bytes), as in `KeyRotated.key_id`
    key: bytes = field(repr=False)  # 16 bytes, AES-128
    epoch_id: str
    start_ms: int
    end_ms: int

    @property
    def key_id_bytes(self) -> bytes:
        return bytes.fromhex(self.key_id)


@dataclass(frozen=True, slots=True)
class _Timeline:
    """One consistent snapshot: the epochs in order and the secrets this region holds."""

    epochs: tuple[EpochInfo, ...] = ()
    secrets: dict[str, EpochSecret] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


class EpochKeys:
    """One region's epochs and content keys, in memory; thread-safe."""

    def __init__(
        self,
        keks: KeyEncryptionKeys,
        *,
        lookback_seconds: int = DEFAULT_LOOKBACK_SECONDS,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._keks = keks
        self._lookback_ms = lookback_seconds * 1000
        self._clock = clock
        self._lock = threading.Lock()
        self._timeline = _Timeline()
        self._events: dict[str, KeyEpoch] = {}
        self._by_period: dict[tuple[str, int], ContentKey] = {}
        self._by_id: dict[str, ContentKey] = {}
        # content -> current period number of its last key_by_id search (negative cache).
        self._searched: dict[str, int] = {}
        self.rejected: dict[str, str] = {}

    @property
    def region(self) -> str:
        return self._keks.region

    def add(self, event: KeyEpoch) -> None:
        """Take in a `KeyEpoch` (new, or re-published with new copies)."""
        with self._lock:
            if self._events.get(event.epoch_id) == event:
                return
        info = EpochInfo.from_event(event)
        reason = invalid_reason(info)
        if reason is not None:
            log.warning("epoch %s ignored in %s: %s", info.epoch_id, self.region, reason)
            with self._lock:
                self.rejected[info.epoch_id] = reason
            return
        secret: EpochSecret | None = None
        unavailable: str | None = None
        try:
            secret = EpochSecret.from_master(info.epoch_id, unwrap_master_key(event, self._keks))
        except UnwrapFailed as exc:
            unavailable = exc.reason
            log.warning("epoch %s unusable in %s: %s", info.epoch_id, self.region, exc.reason)
        with self._lock:
            self._events[info.epoch_id] = event
            self.rejected.pop(info.epoch_id, None)
            timeline = self._timeline
            epochs = [e for e in timeline.epochs if e.epoch_id != info.epoch_id] + [info]
            secrets = {k: v for k, v in timeline.secrets.items() if k != info.epoch_id}
            missing = {k: v for k, v in timeline.unavailable.items() if k != info.epoch_id}
            if secret is not None:
                secrets[info.epoch_id] = secret
            elif unavailable is not None:
                missing[info.epoch_id] = unavailable
            self._replace(_Timeline(in_order(epochs), secrets, missing))

    def remove(self, epoch_id: str) -> None:
        """Forget an epoch (a tombstone on the topic): its keys are gone from this region."""
        with self._lock:
            self._events.pop(epoch_id, None)
            self.rejected.pop(epoch_id, None)
            timeline = self._timeline
            if not any(e.epoch_id == epoch_id for e in timeline.epochs):
                return
            self._replace(
                _Timeline(
                    tuple(e for e in timeline.epochs if e.epoch_id != epoch_id),
                    {k: v for k, v in timeline.secrets.items() if k != epoch_id},
                    {k: v for k, v in timeline.unavailable.items() if k != epoch_id},
                )
            )

    def _replace(self, timeline: _Timeline) -> None:
        # Any epoch change may change which epoch governs a period: drop every derived key.
        self._timeline = timeline
        self._by_period = {}
        self._by_id = {}
        self._searched = {}

    def epochs(self) -> tuple[EpochInfo, ...]:
        """Every epoch in the timeline, oldest first (metadata only)."""
        return self._timeline.epochs

    def unavailable(self) -> dict[str, str]:
        """Epochs in the timeline this region cannot unwrap, with the reason code."""
        return dict(self._timeline.unavailable)

    def event(self, epoch_id: str) -> KeyEpoch | None:
        """The `KeyEpoch` as read (wrapped copies only), e.g. to re-wrap it."""
        with self._lock:
            return self._events.get(epoch_id)

    def has_epoch(self, epoch_id: str) -> bool:
        return any(e.epoch_id == epoch_id for e in self._timeline.epochs)

    def epoch_in_force(self, t_ms: int) -> EpochInfo:
        """The epoch whose keys hold at t_ms; `no-epoch` before the first one."""
        epoch = epoch_in_force(self._timeline.epochs, t_ms)
        if epoch is None:
            raise KeyHierarchyError(f"no key epoch in force at {t_ms}", reason="no-epoch")
        return epoch

    def period_at(self, t_ms: int) -> KeyPeriod:
        """The key period t_ms falls in, on the grid of the epoch in force then."""
        return self.epoch_in_force(t_ms).schedule.at(t_ms)

    def content_key(self, content_id: str, period: int) -> ContentKey:
        """The key of `period` of `content_id`.

        Raises `no-epoch` (no epoch covers the period), `epoch-unavailable` (this region
        cannot unwrap the epoch that does), `bad-period`, `bad-content-id`.
        """
        with self._lock:
            cached = self._by_period.get((content_id, period))
            if cached is not None:
                return cached
            timeline = self._timeline
            epoch = epoch_for_period(timeline.epochs, period)
            if epoch is None:
                raise KeyHierarchyError(f"no key epoch covers period {period}", reason="no-epoch")
            secret = timeline.secrets.get(epoch.epoch_id)
            if secret is None:
                why = timeline.unavailable.get(epoch.epoch_id, "unknown")
                raise KeyHierarchyError(
                    f"epoch {epoch.epoch_id} cannot be unwrapped in {self.region} ({why})",
                    reason="epoch-unavailable",
                )
            bounds = epoch.schedule.period(period)
            key = ContentKey(
                content_id=content_id,
                period=period,
                key_id=secret.key_id(content_id, period).hex(),
                key=secret.content_key(content_id, period),
                epoch_id=epoch.epoch_id,
                start_ms=bounds.start_ms,
                end_ms=bounds.end_ms,
            )
            if len(self._by_period) >= MAX_CACHED_KEYS:
                self._by_period = {}
                self._by_id = {}
                self._searched = {}
            self._by_period[(content_id, period)] = key
            self._by_id[key.key_id] = key
            return key

    def content_key_at(self, content_id: str, t_ms: int) -> ContentKey:
        """The key of content_id for the period holding t_ms."""
        return self.content_key(content_id, self.period_at(t_ms).number)

    def current_and_next(self, content_id: str, now_ms: int) -> tuple[ContentKey, ContentKey]:
        """The keys of the period holding now_ms and of the period after it."""
        current = self.content_key_at(content_id, now_ms)
        return current, self.content_key_at(content_id, current.end_ms)

    def key_by_id(self, key_id: str, *, content_id: str | None = None) -> ContentKey | None:
        """The key a key id (hex) names, among keys in force; None when unknown.

        Without content_id, only keys derived here already are found (every key
        `content_key` handed out). With it, only that content's keys are answered, and
        its periods from the lookback window up to the next period are searched too.
        A key id of a key that a later (emergency) epoch replaced is unknown.
        Raises `bad-key-id` for malformed ids.
        """
        wanted = parse_key_id(key_id).hex()
        found = self._by_id.get(wanted)
        if content_id is None:
            return found
        if found is not None:
            # A key of another content is no answer to a request for this one.
            return found if found.content_id == content_id else None
        now = self._clock()
        try:
            current = self.period_at(now).number
            oldest = self.period_at(max(0, now - self._lookback_ms)).number
        except KeyHierarchyError:
            return None
        if self._searched.get(content_id) == current:
            return None
        for period in range(current + 1, oldest - 1, -1):
            try:
                key = self.content_key(content_id, period)
            except KeyHierarchyError as exc:
                if exc.reason in ("no-epoch", "epoch-unavailable"):
                    continue
                raise
            if key.key_id == wanted:
                return key
        with self._lock:
            self._searched[content_id] = current
        return None


class KeyStore(EpochKeys):
    """`EpochKeys` fed from the compacted `keys.epochs` topic; what services hold.

    `start()` reads the topic from the beginning; `wait_ready()` turns true once it has
    caught up. Tombstones remove epochs. The region's KEKs come from its local keyring
    file unless `keks` is given.
    """

    def __init__(
        self,
        settings: Settings,
        region: str | None = None,
        *,
        keks: KeyEncryptionKeys | None = None,
        topic: str = EPOCHS_TOPIC,
        lookback_seconds: int = DEFAULT_LOOKBACK_SECONDS,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__(
            keks or local_keks(settings, region or settings.region),
            lookback_seconds=lookback_seconds,
            clock=clock,
        )
        self._changed = threading.Condition()
        self._seen_at: dict[str, float] = {}
        self._view = CompactedTopicView(settings, topic, KeyEpoch, on_change=self._on_change)

    def start(self, timeout: float = 30.0) -> None:
        self._view.start(timeout)

    def wait_ready(self, timeout: float) -> bool:
        return self._view.wait_ready(timeout)

    def ready(self) -> bool:
        return self._view.ready()

    def wait_for_epoch(self, epoch_id: str, timeout: float) -> bool:
        """Block until epoch_id is in the timeline (or timeout); True if it is."""
        with self._changed:
            return self._changed.wait_for(lambda: self.has_epoch(epoch_id), timeout)

    def seen_at(self, epoch_id: str) -> float | None:
        """When (`time.monotonic()`) this store first took the epoch in; for drills."""
        with self._changed:
            return self._seen_at.get(epoch_id)

    def close(self) -> None:
        self._view.close()

    def _on_change(self, key: str, event: KeyEpoch | None) -> None:
        if event is None:
            self.remove(key)
        else:
            self.add(event)
        with self._changed:
            if event is not None:
                self._seen_at.setdefault(event.epoch_id, time.monotonic())
            self._changed.notify_all()
