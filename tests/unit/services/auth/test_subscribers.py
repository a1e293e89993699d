"""Subscriber records: validation, the package rule, and reading one's own writes."""

from __future__ import annotations

import pytest

from services.auth.errors import SubscriberInvalid
from services.auth.subscribers import (
    InMemorySubscriberView,
    SubscriberDirectory,
    entitled,
    package_covers,
    validate_record,
)
from streams.events import SubscriberEntitlements

GOOD = {
    "packages": ["sports", "sports"],
    "content_ids": ["news/live"],
    "device_classes": ["web", "tv"],
    "max_concurrent_streams": 2,
    "home_country": "DE",
}


def test_a_valid_record_is_normalised() -> None:
    record = validate_record("viewer-1", GOOD)
    assert record.packages == ("sports",)
    assert record.device_classes == ("tv", "web")
    assert record.active is True
    event = record.to_event(event_id="e", occurred_at=1, region="eu-west", session_version=4)
    assert (event.viewer_id, event.session_version, event.home_country) == ("viewer-1", 4, "DE")


@pytest.mark.parametrize(
    ("viewer_id", "changes", "complaint"),
    [
        ("", {}, "viewer_id"),
        ("has space", {}, "viewer_id"),
        ("x" * 129, {}, "viewer_id"),
        (42, {}, "viewer_id"),
        ("v", {"device_classes": ["toaster"]}, "unknown device classes"),
        ("v", {"device_classes": []}, "at least one"),
        ("v", {"packages": "sports"}, "list of strings"),
        ("v", {"content_ids": ["../etc"]}, "invalid id"),
        ("v", {"content_ids": [7]}, "invalid id"),
        ("v", {"max_concurrent_streams": 0}, "1..100"),
        ("v", {"max_concurrent_streams": True}, "integer"),
        ("v", {"max_concurrent_streams": "2"}, "integer"),
        ("v", {"home_country": "Germany"}, "alpha-2"),
        ("v", {"active": "yes"}, "true or false"),
        ("v", {"colour": "blue"}, "unknown fields: colour"),
    ],
)
def test_invalid_records_say_what_is_wrong(
    viewer_id: object, changes: dict[str, object], complaint: str
) -> None:
    with pytest.raises(SubscriberInvalid, match=complaint):
        validate_record(viewer_id, {**GOOD, **changes})


def test_packages_cover_their_path_and_the_star_covers_everything() -> None:
    assert package_covers("sports", "sports")
    assert package_covers("sports", "sports/cup-final")
    assert not package_covers("sports", "sportsnight/show")
    assert package_covers("*", "anything/at-all")
    assert entitled((), ("news/live",), "news/live")
    assert not entitled((), ("news/live",), "news/live/extra")


def _event(version: int, occurred_at: int, event_id: str) -> SubscriberEntitlements:
    return validate_record("viewer-1", GOOD).to_event(
        event_id=event_id, occurred_at=occurred_at, region="eu-west", session_version=version
    )


def test_the_directory_reads_its_own_writes_until_the_view_catches_up() -> None:
    view = InMemorySubscriberView({"viewer-1": _event(0, 100, "a")})
    now = [0.0]
    directory = SubscriberDirectory(view, clock=lambda: now[0], overlay_s=10)
    written = _event(1, 200, "b")
    directory.wrote(written)
    assert directory.get("viewer-1") == written
    view.records["viewer-1"] = written
    assert directory.get("viewer-1") == written
    # Once caught up the view rules again, even when a later writer's clock lags.
    view.records["viewer-1"] = _event(2, 150, "c")
    assert directory.get("viewer-1").session_version == 2  # type: ignore[union-attr]


def test_the_overlay_gives_way_to_the_view_after_a_while() -> None:
    view = InMemorySubscriberView({"viewer-1": _event(0, 300, "a")})
    now = [0.0]
    directory = SubscriberDirectory(view, clock=lambda: now[0], overlay_s=10)
    directory.wrote(_event(5, 300, "mine"))
    assert directory.get("viewer-1").session_version == 5  # type: ignore[union-attr]
    now[0] = 11.0
    assert directory.get("viewer-1").session_version == 0  # type: ignore[union-attr]
