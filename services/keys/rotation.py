"""The rotation process: creates epochs (first, scheduled, emergency) and announces key periods.

One `Rotator` per deployment is enough (epochs are rare and pre-published); two running
at once stay consistent, since every region orders epochs the same way (`timeline`),
but would publish more epochs than needed.

A new epoch is published (confirmed by Kafka) before this process uses it, and applied
to its own `EpochKeys` at once so it announces with it without waiting to read it back.
`KeyRotated` goes out for every known content when a period begins, and again whenever
the key of the current period changes (an emergency epoch, from this or another
process), so packagers switch keys without polling. No event carries key material.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services.keys.epochs import (
    build_key_epoch,
    new_epoch_id,
    new_master_key,
    unwrap_master_key,
)
from services.keys.errors import KeyHierarchyError
from services.keys.keystore import EpochKeys
from services.keys.kms import KeyEncryptionKeys
from services.keys.schedule import KeySchedule
from services.keys.timeline import (
    EpochInfo,
    RotationPolicy,
    chain_period_seconds,
    earliest_safe_start,
    epoch_in_force,
    first_epoch_start,
    next_scheduled_start,
    pending_after,
)
from streams.catalog import CATALOG, TopicSpec
from streams.codec import AvroEvent
from streams.errors import StreamsError
from streams.events import KeyRotated
from streams.meta import new_event_id, now_ms
from streams.producer import Delivered

log = logging.getLogger(__name__)

# The loop wakes at least this often (seconds) to notice epochs published elsewhere.
MAX_SLEEP_S = 1.0


class EventPublisher(Protocol):
    """What the rotator needs of `streams.producer.EventProducer`: confirmed sends."""

    def send_all(
        self, topic: str | TopicSpec, events: Sequence[AvroEvent], *, timeout: float = 30.0
    ) -> list[Delivered]: ...

    def send_raw(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes | None]],
        *,
        timeout: float = 30.0,
    ) -> list[Delivered]: ...


@dataclass(frozen=True, slots=True)
class KeyTopics:
    """Where epochs and rotations go (the catalog's, unless a test isolates its own)."""

    epochs: TopicSpec = CATALOG["keys.epochs"]
    rotations: TopicSpec = CATALOG["keys.rotations"]


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    """What one step did: epochs created, pending epochs withdrawn, periods announced."""

    created: tuple[EpochInfo, ...] = ()
    withdrawn: tuple[str, ...] = ()
    announced: tuple[KeyRotated, ...] = field(default=())


class Rotator:
    """Creates epochs wrapped for every region and announces key periods."""

    def __init__(
        self,
        keys: EpochKeys,
        keks: Mapping[str, KeyEncryptionKeys],
        publisher: EventPublisher,
        *,
        policy: RotationPolicy | None = None,
        contents: Callable[[], Iterable[str]] = tuple,
        topics: KeyTopics | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if keys.region not in keks:
            # It must read back what it wraps, or it could not announce key ids.
            raise KeyHierarchyError(
                f"region {keys.region} rotates but is not among the regions it wraps for",
                reason="no-regions",
            )
        self._keys = keys
        self._keks = dict(keks)
        self._publisher = publisher
        self._policy = policy or RotationPolicy()
        self._contents = contents
        self._topics = topics or KeyTopics()
        self._clock = clock
        self._announced: dict[str, tuple[int, str]] = {}

    @property
    def region(self) -> str:
        return self._keys.region

    def schedule(self) -> KeySchedule:
        """The key periods of the chain (`period-length-change` if the policy disagrees)."""
        return KeySchedule(chain_period_seconds(self._keys.epochs(), self._policy.period_seconds))

    def ensure_epoch(self) -> EpochInfo | None:
        """Create an epoch in force from the current period if there is none; returns it."""
        now = self._clock()
        if epoch_in_force(self._keys.epochs(), now) is not None:
            return None
        return self._create(first_epoch_start(self.schedule(), now), emergency=False)

    def rotate(self, *, emergency: bool = False) -> RotationOutcome:
        """Start a new epoch now.

        Emergency: it governs from the current period on, and epochs published to start
        later are withdrawn. Otherwise it starts at the earliest boundary that changes
        no key a license already carries (two periods on), or at once if no epoch is
        in force yet.
        """
        now = self._clock()
        schedule = self.schedule()
        withdrawn: tuple[str, ...] = ()
        if emergency:
            start = first_epoch_start(schedule, now)
            epoch = self._create(start, emergency=True)
            withdrawn = self._withdraw(
                [e for e in pending_after(self._keys.epochs(), start) if e != epoch]
            )
        elif epoch_in_force(self._keys.epochs(), now) is None:
            epoch = self._create(first_epoch_start(schedule, now), emergency=False)
        else:
            epoch = self._create(earliest_safe_start(schedule, now), emergency=False)
        return RotationOutcome((epoch,), withdrawn, self.announce())

    def tick(self) -> RotationOutcome:
        """One step of the loop: an epoch in force, the next one when due, announcements."""
        created = self.ensure_epoch()
        if created is None:
            start = next_scheduled_start(
                self._keys.epochs(), self._clock(), self._policy, self.schedule()
            )
            if start is not None:
                created = self._create(start, emergency=False)
        return RotationOutcome((created,) if created else (), (), self.announce())

    def announce(self) -> tuple[KeyRotated, ...]:
        """`KeyRotated` for each content whose current key was not announced yet."""
        now = self._clock()
        period = self._keys.period_at(now).number
        events = []
        contents = list(dict.fromkeys(self._contents()))
        for content_id in contents:
            key = self._keys.content_key(content_id, period)
            if self._announced.get(content_id) == (period, key.key_id):
                continue
            events.append(
                KeyRotated(
                    event_id=new_event_id(),
                    occurred_at=now,
                    region=self.region,
                    content_id=content_id,
                    period=period,
                    key_id=key.key_id,
                    epoch_id=key.epoch_id,
                    period_start=key.start_ms,
                    period_end=key.end_ms,
                )
            )
        if events:
            self._publisher.send_all(self._topics.rotations, events)
        known = set(contents)
        self._announced = {c: v for c, v in self._announced.items() if c in known}
        for event in events:
            self._announced[event.content_id] = (event.period, event.key_id)
        return tuple(events)

    def rewrap(self) -> tuple[str, ...]:
        """Re-publish every epoch wrapped under each region's newest KEK; returns their ids.

        After a KEK rotation (old copies then move to the new version) or when a region
        joins (it gets a copy of every epoch). The epoch id, master, times and so every
        content key stay the same; compaction then drops the old copies from the topic.
        """
        own = self._keks[self.region]
        events = []
        for info in self._keys.epochs():
            current = self._keys.event(info.epoch_id)
            if current is None or info.epoch_id in self._keys.unavailable():
                continue
            events.append(
                build_key_epoch(
                    master_key=unwrap_master_key(current, own),
                    epoch_id=current.epoch_id,
                    started_at=current.started_at,
                    period_seconds=current.period_seconds,
                    emergency=current.emergency,
                    keks=self._keks,
                    emitted_by=self.region,
                    event_id=new_event_id(),
                    occurred_at=current.occurred_at,
                )
            )
        if events:
            self._publisher.send_all(self._topics.epochs, events)
        for event in events:
            self._keys.add(event)
        return tuple(e.epoch_id for e in events)

    def run(
        self,
        stop: threading.Event,
        *,
        duration: float | None = None,
        on_step: Callable[[RotationOutcome], None] | None = None,
    ) -> None:
        """Tick at every period boundary (and at least every second) until stop or duration.

        Kafka trouble is logged and retried on the next tick; a `period-length-change`
        (a configuration error) ends the loop. `on_step` sees every step that did something.
        """
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            try:
                outcome = self.tick()
                if on_step is not None and (outcome.created or outcome.announced):
                    on_step(outcome)
            except StreamsError as exc:
                log.error("rotation step failed, retrying: [%s] %s", exc.reason, exc)
            except KeyHierarchyError as exc:
                if exc.reason == "period-length-change":
                    raise
                log.error("rotation step failed, retrying: [%s] %s", exc.reason, exc)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            stop.wait(min(MAX_SLEEP_S, self._until_boundary_s(), left or MAX_SLEEP_S))

    def _until_boundary_s(self) -> float:
        now = self._clock()
        try:
            end = self._keys.period_at(now).end_ms
        except KeyHierarchyError:
            return MAX_SLEEP_S
        # Wake just after the boundary, so the new period is the current one.
        return max(0.0, (end - now) / 1000) + 0.005

    def _create(self, started_at: int, *, emergency: bool) -> EpochInfo:
        schedule = self.schedule()
        master = new_master_key()
        event = build_key_epoch(
            master_key=master,
            epoch_id=new_epoch_id(started_at),
            started_at=started_at,
            period_seconds=schedule.period_seconds,
            emergency=emergency,
            keks=self._keks,
            emitted_by=self.region,
            event_id=new_event_id(),
            occurred_at=self._clock(),
        )
        self._publisher.send_all(self._topics.epochs, [event])
        self._keys.add(event)
        if event.epoch_id in self._keys.unavailable():
            raise KeyHierarchyError(
                f"epoch {event.epoch_id} was published but {self.region} cannot unwrap it",
                reason="epoch-unavailable",
            )
        info = EpochInfo.from_event(event)
        log.info(
            "created %sepoch %s from %d (%d-s periods) for %s",
            "emergency " if emergency else "",
            info.epoch_id,
            started_at,
            info.period_seconds,
            ",".join(info.regions),
        )
        return info

    def _withdraw(self, epochs: Sequence[EpochInfo]) -> tuple[str, ...]:
        if not epochs:
            return ()
        self._publisher.send_raw(
            self._topics.epochs.name, [(e.epoch_id.encode(), None) for e in epochs]
        )
        for epoch in epochs:
            self._keys.remove(epoch.epoch_id)
            log.info("withdrew pending epoch %s", epoch.epoch_id)
        return tuple(e.epoch_id for e in epochs)
