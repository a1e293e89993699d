"""The accuracy harness: the shipped labelled set decides without error; misses are counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.access.accuracy import (
    LabelledSetError,
    load_labelled,
    parse_labelled,
    run_accuracy,
)
from services.access.geo import GeoResolver
from services.access.policy import PolicyBook

HEADER = "ip,content,device_class,expected_reason,category\n"


def test_the_shipped_labelled_set_has_no_errors(
    resolver: GeoResolver, shipped_book: PolicyBook
) -> None:
    cases = load_labelled(None)
    report = run_accuracy(cases, resolver, shipped_book)
    assert [(m.case.line, m.case.ip, m.actual_reason) for m in report.misses] == []
    assert report.cases == len(cases)
    # The set covers every kind of edge case it claims to.
    assert {s.category for s in report.scores} >= {
        "location",
        "anonymizer",
        "country",
        "device",
        "ipv6",
        "special",
        "garbage",
    }


def test_misses_are_counted_by_category(resolver: GeoResolver, shipped_book: PolicyBook) -> None:
    cases = parse_labelled(
        HEADER
        + "89.160.20.130,news,web,allowed,location\n"
        + "8.8.8.8,news,web,allowed,location\n"  # wrong: unknown location
        + "1.2.3.4,news,web,anonymizer-tor,anonymizer\n"  # wrong: a VPN
        + "nope,news,web,bad-ip,garbage\n"
    )
    report = run_accuracy(cases, resolver, shipped_book)
    assert [(s.category, s.cases, s.errors) for s in report.scores] == [
        ("location", 2, 1),
        ("anonymizer", 1, 1),
        ("garbage", 1, 0),
    ]
    assert [(m.case.line, m.actual_reason) for m in report.misses] == [
        (3, "unknown-location"),
        (4, "anonymizer-vpn"),
    ]


def test_comments_and_blank_lines_are_skipped_and_lines_still_point_at_the_file() -> None:
    cases = parse_labelled("# note\n" + HEADER + "\n# more\n10.0.0.1,c,web,private-address,x\n")
    assert [(c.line, c.ip) for c in cases] == [(5, "10.0.0.1")]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "no header"),
        ("ip,content\n", "header must be"),
        (HEADER + "1.1.1.1,c,web,allowed\n", "4 fields"),
        (HEADER + "1.1.1.1,c,web,alowed,x\n", "unknown reason"),
    ],
)
def test_a_broken_labelled_set_is_refused(text: str, complaint: str) -> None:
    with pytest.raises(LabelledSetError) as raised:
        parse_labelled(text, "set.csv")
    assert complaint in str(raised.value)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabelledSetError):
        load_labelled(tmp_path / "missing.csv")
