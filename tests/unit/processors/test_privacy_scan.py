"""The privacy scanner's detector: addresses, emails and raw ids in, pseudonyms and networks out."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.privacy_scan import CANDIDATE_RE2, Detector, Hit, scan_text

PSEUDONYM = "3f2a9c0d4e5b6a7f8e9d0c1b2a3f4e5d"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("203.0.113.77", "ipv4"),
        ("client=198.51.100.7;cdn=a", "ipv4"),
        ("203.0.113.0/32", "ipv4"),
        ("2001:db8:85a3::8a2e:370:7334", "ipv6"),
        ("via [2001:db8:1:2::1]:443", "ipv6"),
        ("::ffff:192.0.2.128", "ipv4"),
        ("alice.smith+tv@example.co.uk", "email"),
        ("device 00:1A:2B:3C:4D:5E", "mac-address"),
        ("00-1a-2b-3c-4d-5e", "mac-address"),
        ("call +4915123456789", "phone-number"),
    ],
)
def test_direct_identifiers_inside_strings_are_found(text: str, kind: str) -> None:
    assert kind in {k for k, _ in scan_text(text)}


@pytest.mark.parametrize(
    "text",
    [
        "203.0.113.0/24",  # a truncated network is what analytics may keep
        "10.20.0.0/16",
        "2001:db8:1::/48",
        "NL",
        "eu-west",
        "live-2024-05-01",
        "12:30:45",
        "std::string",
        "fe80::1",
        "::",
        PSEUDONYM,
        "1.2.3",
        "999.1.1.1",
        "4500",
        "a@b",
    ],
)
def test_allowed_values_are_not_reported(text: str) -> None:
    assert scan_text(text) == []


def test_pseudonym_fields_must_hold_keyed_hashes() -> None:
    detector = Detector()

    assert detector.scan_value("viewer_pseudonym", PSEUDONYM) == []
    assert detector.scan_value("session_ref", PSEUDONYM * 2) == []
    [hit] = detector.scan_value("viewer_pseudonym", "subscriber-0042")
    assert hit.kind == "not-a-pseudonym"
    # Other fields may hold any label.
    assert detector.scan_value("content_id", "subscriber-0042") == []


def test_known_raw_viewer_ids_are_found_whole_or_as_a_token() -> None:
    detector = Detector(["cust-88123", "x"])

    assert [h.kind for h in detector.scan_value("content_id", "cust-88123")] == ["raw-viewer-id"]
    assert [h.kind for h in detector.scan_value("cdn", "edge|cust-88123|a")] == ["raw-viewer-id"]
    assert detector.scan_value("cdn", "cust-881234") == []
    # Ids too short to be real would match everywhere: ignored.
    assert detector.scan_value("cdn", "x") == []


def test_records_are_scanned_field_by_field_and_by_name() -> None:
    record = {
        "viewer_pseudonym": PSEUDONYM,
        "country": "NL",
        "client_ip": "203.0.113.0/24",
        "tags": ["ok", {"note": "mail me at bob@example.org"}],
        "bitrate_kbps": 4500,
    }

    hits = Detector().scan_record(record)

    assert {(h.kind, h.field) for h in hits} == {
        ("identifier-field", "client_ip"),
        ("email", "tags[].note"),
    }


def test_reports_mask_what_they_found() -> None:
    hit = Hit("ipv4", "country", "203.0.113.77")

    assert hit.masked == "203…"
    assert "113.77" not in hit.masked


@given(st.ip_addresses(v=4).map(str), st.text(alphabet="abc- ;=", max_size=5))
def test_any_ipv4_address_in_any_context_is_found(address: str, around: str) -> None:
    text = f"{around}{address}{around}"

    assert ("ipv4", address) in scan_text(text)
    # The server-side pre-filter (RE2 syntax) must let it through too.
    assert re.search(CANDIDATE_RE2, text)


@given(st.ip_addresses(v=6).filter(lambda a: not a.ipv4_mapped and len(a.exploded) > 0))
def test_ipv6_addresses_with_three_groups_are_found(address: object) -> None:
    text = str(address)
    groups = sum(1 for g in text.split(":") if g)
    if groups >= 3 and not text.startswith("::ffff:"):
        assert "ipv6" in {k for k, _ in scan_text(f"x {text} y")}
        assert re.search(CANDIDATE_RE2, text)
