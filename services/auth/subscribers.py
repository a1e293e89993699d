"""Subscribers: validating entitlement records, what they entitle, and the service's view of them.

The source of truth is the compacted `subscribers.entitlements` topic (key viewer_id);
the admin API and the bulk loader write to it, and every auth process reads all of it.

Packages map to content by name, with no table to keep in sync: package `P` entitles
every content id equal to `P` or starting with `P/` (content ids are paths such as
`sports/cup-final`), and the package `*` entitles everything. Individual content ids
in `content_ids` entitle exactly themselves.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.auth.errors import SubscriberInvalid
from streams.events import SubscriberEntitlements

ALL_CONTENT = "*"
# The device classes players report; a request naming another is refused.
DEVICE_CLASSES = frozenset({"web", "mobile", "tablet", "tv", "set-top-box", "console", "desktop"})
MAX_STREAMS_LIMIT = 100
MAX_LIST_ITEMS = 1000
# How long this process trusts its own confirmed writes over a view that lags behind.
OVERLAY_S = 10.0

VIEWER_ID = re.compile(r"^[A-Za-z0-9._:@+-]{1,128}$")
DEVICE_ID = re.compile(r"^[A-Za-z0-9._:@+-]{1,128}$")
# Path-like ids whose segments never start with a dot (no `.` or `..` segments).
CONTENT_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
PACKAGE = re.compile(r"^(\*|[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*)$")
COUNTRY = re.compile(r"^[A-Z]{2}$")

RECORD_FIELDS = frozenset(
    {
        "packages",
        "content_ids",
        "device_classes",
        "max_concurrent_streams",
        "home_country",
        "active",
    }
)


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """A validated subscriber, as an admin writes it (the service keeps session_version)."""

    viewer_id: str
    packages: tuple[str, ...]
    content_ids: tuple[str, ...]
    device_classes: tuple[str, ...]
    max_concurrent_streams: int
    home_country: str
    active: bool

    def to_event(
        self, *, event_id: str, occurred_at: int, region: str, session_version: int
    ) -> SubscriberEntitlements:
        return SubscriberEntitlements(
            event_id=event_id,
            occurred_at=occurred_at,
            region=region,
            viewer_id=self.viewer_id,
            packages=self.packages,
            content_ids=self.content_ids,
            device_classes=self.device_classes,
            max_concurrent_streams=self.max_concurrent_streams,
            home_country=self.home_country,
            session_version=session_version,
            active=self.active,
        )


def _id_list(value: object, name: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise SubscriberInvalid(f"{name} must be a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise SubscriberInvalid(f"{name} holds more than {MAX_LIST_ITEMS} items")
    for item in value:
        if not isinstance(item, str) or not pattern.match(item) or len(item) > 256:
            raise SubscriberInvalid(f"{name} holds an invalid id: {item!r}")
    # Sorted and deduplicated: the same entitlements always make the same record.
    return tuple(sorted(set(value)))


def validate_record(viewer_id: object, fields: Mapping[str, Any]) -> SubscriberRecord:
    """A SubscriberRecord from loosely typed fields (JSON, CSV), or SubscriberInvalid."""
    if not isinstance(viewer_id, str) or not VIEWER_ID.match(viewer_id):
        raise SubscriberInvalid(f"viewer_id {viewer_id!r} is not 1-128 of [A-Za-z0-9._:@+-]")
    unknown = set(fields) - RECORD_FIELDS - {"viewer_id"}
    if unknown:
        raise SubscriberInvalid(f"unknown fields: {', '.join(sorted(unknown))}")
    packages = _id_list(fields.get("packages", []), "packages", PACKAGE)
    content_ids = _id_list(fields.get("content_ids", []), "content_ids", CONTENT_ID)
    device_classes = _id_list(fields.get("device_classes", []), "device_classes", CONTENT_ID)
    strangers = set(device_classes) - DEVICE_CLASSES
    if strangers:
        raise SubscriberInvalid(
            f"unknown device classes {sorted(strangers)}; known: {sorted(DEVICE_CLASSES)}"
        )
    if not device_classes:
        raise SubscriberInvalid("device_classes must name at least one device class")
    streams = fields.get("max_concurrent_streams", 1)
    if isinstance(streams, bool) or not isinstance(streams, int):
        raise SubscriberInvalid("max_concurrent_streams must be an integer")
    if not 1 <= streams <= MAX_STREAMS_LIMIT:
        raise SubscriberInvalid(f"max_concurrent_streams must be 1..{MAX_STREAMS_LIMIT}")
    country = fields.get("home_country", "")
    if not isinstance(country, str) or (country and not COUNTRY.match(country)):
        raise SubscriberInvalid("home_country must be an ISO 3166-1 alpha-2 code like DE")
    active = fields.get("active", True)
    if not isinstance(active, bool):
        raise SubscriberInvalid("active must be true or false")
    return SubscriberRecord(
        viewer_id=viewer_id,
        packages=packages,
        content_ids=content_ids,
        device_classes=device_classes,
        max_concurrent_streams=streams,
        home_country=country,
        active=active,
    )


def record_of(event: SubscriberEntitlements) -> dict[str, Any]:
    """A stored subscriber as the admin API answers it."""
    return {
        "viewer_id": event.viewer_id,
        "packages": list(event.packages),
        "content_ids": list(event.content_ids),
        "device_classes": list(event.device_classes),
        "max_concurrent_streams": event.max_concurrent_streams,
        "home_country": event.home_country,
        "active": event.active,
        "session_version": event.session_version,
        "updated_at": event.occurred_at,
    }


def package_covers(package: str, content_id: str) -> bool:
    """True if package entitles content_id (see the module docstring for the rule)."""
    return package in (ALL_CONTENT, content_id) or content_id.startswith(package + "/")


def entitled(packages: tuple[str, ...], content_ids: tuple[str, ...], content_id: str) -> bool:
    return content_id in content_ids or any(package_covers(p, content_id) for p in packages)


class SubscriberView(Protocol):
    """Latest subscriber record per viewer_id (the compacted topic, or a dict in tests)."""

    def get(self, key: str) -> SubscriberEntitlements | None: ...

    def ready(self) -> bool: ...


class InMemorySubscriberView:
    """A SubscriberView over a dict; what the unit tests and tools use."""

    def __init__(self, records: Mapping[str, SubscriberEntitlements] | None = None) -> None:
        self.records: dict[str, SubscriberEntitlements] = dict(records or {})

    def get(self, key: str) -> SubscriberEntitlements | None:
        return self.records.get(key)

    def ready(self) -> bool:
        return True


class SubscriberDirectory:
    """The view of the topic, plus this process's own writes until the view has them.

    Without the overlay, a token request right after `PUT /v1/subscribers/…` (or a
    second viewer revocation right after the first) would read the record from before
    the write, because the view follows the topic a few milliseconds behind.
    """

    def __init__(
        self,
        view: SubscriberView,
        *,
        clock: Callable[[], float] = time.monotonic,
        overlay_s: float = OVERLAY_S,
    ) -> None:
        self._view = view
        self._clock = clock
        self._overlay_s = overlay_s
        self._written: dict[str, tuple[float, SubscriberEntitlements]] = {}
        self._lock = threading.Lock()

    def get(self, viewer_id: str) -> SubscriberEntitlements | None:
        seen = self._view.get(viewer_id)
        with self._lock:
            written = self._written.get(viewer_id)
            if written is None:
                return seen
            written_at, mine = written
            caught_up = seen is not None and (
                seen.event_id == mine.event_id or seen.occurred_at > mine.occurred_at
            )
            # Past overlay_s the view wins: the topic's order is the truth even when two
            # writers' clocks disagree about occurred_at.
            if caught_up or self._clock() - written_at > self._overlay_s:
                del self._written[viewer_id]
                return seen
            return mine

    def wrote(self, event: SubscriberEntitlements) -> None:
        """Record an event this process had confirmed by Kafka."""
        with self._lock:
            self._written[event.viewer_id] = (self._clock(), event)

    def ready(self) -> bool:
        return self._view.ready()
