"""Conformance with MaxMind's own test databases: known addresses, aliases, broken files.

The databases come from github.com/maxmind/MaxMind-DB (test-data/) and live outside the
repository, in the shared data directory (`LIVEWARD_SHARED_DATA`, by default
`../shared/data` beside the checkout) under `maxmind-test/`. Tests skip, saying which
file is missing, when they are absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.access.accuracy import load_labelled, run_accuracy
from services.access.geo import GeoError, GeoResolver
from services.access.policy import PolicyBook

CITY = "GeoIP2-City-Test.mmdb"
COUNTRY = "GeoIP2-Country-Test.mmdb"
ASN = "GeoLite2-ASN-Test.mmdb"
ANONYMOUS = "GeoIP2-Anonymous-IP-Test.mmdb"
BROKEN = ("GeoIP2-City-Test-Broken-Double-Format.mmdb", "GeoIP2-City-Test-Invalid-Node-Count.mmdb")


def _maxmind_dir() -> Path:
    shared = os.environ.get("LIVEWARD_SHARED_DATA")
    base = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared" / "data"
    return base / "maxmind-test"


def _db(name: str) -> Path:
    path = _maxmind_dir() / name
    if not path.is_file():
        pytest.skip(
            f"MaxMind test database {path} is absent; set LIVEWARD_SHARED_DATA to the "
            "directory holding maxmind-test/ (from github.com/maxmind/MaxMind-DB test-data/)"
        )
    return path


@pytest.fixture(scope="module")
def maxmind() -> Iterator[GeoResolver]:
    with GeoResolver(_db(CITY), _db(ASN), _db(ANONYMOUS)) as resolver:
        yield resolver


@pytest.mark.parametrize(
    ("ip", "country", "subdivisions", "asn"),
    [
        ("81.2.69.142", "GB", ("ENG",), None),  # MaxMind's documented London example
        ("81.2.69.160", "GB", ("ENG",), None),
        ("2.125.160.216", "GB", ("ENG", "WBK"), None),
        ("89.160.20.112", "SE", ("E",), 29518),
        ("89.160.20.128", "SE", ("E",), 29518),
        ("216.160.83.56", "US", ("WA",), 209),
        ("214.78.120.1", "US", ("CA",), 721),
        ("214.0.1.1", "AU", ("VIC",), 721),
        ("175.16.199.0", "CN", ("22",), None),
        ("67.43.156.0", "BT", (), 35908),
        ("202.196.224.0", "PH", (), None),
        ("149.101.100.0", "US", (), 6167),
        ("2001:218::", "JP", (), None),
        ("2001:480:10::1", "US", ("CA",), None),
        ("2a02:d3c0::1", "GB", (), None),
        ("214.1.1.0", None, (), 721),  # anycast: traits, no country
        ("1.128.0.0", None, (), 1221),  # Telstra, in the ASN database only
        ("12.81.92.0", None, (), 7018),
    ],
)
def test_known_addresses_resolve_as_maxmind_lists_them(
    maxmind: GeoResolver,
    ip: str,
    country: str | None,
    subdivisions: tuple[str, ...],
    asn: int | None,
) -> None:
    facts = maxmind.resolve(ip)
    assert (facts.country, facts.subdivisions, facts.asn) == (country, subdivisions, asn)


def test_asn_organisations_come_through(maxmind: GeoResolver) -> None:
    assert maxmind.resolve("1.128.0.0").asn_organization == "Telstra Pty Ltd"
    assert maxmind.resolve("89.160.20.112").asn_organization == "Bredband2 AB"


@pytest.mark.parametrize(
    ("ip", "kinds"),
    [
        ("1.2.0.1", {"vpn"}),
        ("1.124.213.1", {"vpn", "tor"}),
        ("6.1.0.2", {"hosting"}),
        ("6.1.0.3", {"public_proxy"}),
        ("6.1.0.4", {"residential_proxy"}),
        ("65.0.0.1", {"tor"}),
        ("71.160.223.1", {"hosting"}),
        ("186.30.236.1", {"public_proxy"}),
        ("81.2.69.142", {"vpn", "tor", "hosting", "public_proxy", "residential_proxy"}),
        ("2001:480:3a::1", {"public_proxy"}),
        ("89.160.20.112", set()),
    ],
)
def test_anonymous_ip_flags_resolve_as_maxmind_lists_them(
    maxmind: GeoResolver, ip: str, kinds: set[str]
) -> None:
    expected = kinds | {"anonymous"} if kinds else set()
    assert maxmind.resolve(ip).anonymizers == expected


def test_ipv4_mapped_and_6to4_addresses_reach_the_ipv4_records(maxmind: GeoResolver) -> None:
    assert maxmind.resolve("::ffff:81.2.69.142") == maxmind.resolve("81.2.69.142")
    # MaxMind aliases 2002::/16 to IPv4: 2002:5102:458e:: is 81.2.69.142.
    six_to_four = maxmind.resolve("2002:5102:458e::1")
    assert (six_to_four.country, six_to_four.subdivisions) == ("GB", ("ENG",))
    assert six_to_four.network == "2002:5102:4500::/40"


def test_the_country_database_serves_as_the_location_database() -> None:
    with GeoResolver(_db(COUNTRY), None, None) as countries:
        assert countries.resolve("81.2.69.142").country == "GB"
        assert countries.resolve("50.114.0.1").country == "US"
        # Single IPv6 addresses with their own country, beside their /32 neighbours.
        assert countries.resolve("2001:220::").country == "SE"
        assert countries.resolve("2001:220::1").country == "KR"


def test_every_record_of_every_database_decodes(maxmind: GeoResolver) -> None:
    counts = maxmind.verify()
    assert set(counts) == {"city", "asn", "anonymous"}
    assert all(n > 100 for n in counts.values())


@pytest.mark.parametrize("name", BROKEN)
def test_broken_databases_fail_at_open_naming_the_file(name: str) -> None:
    path = _db(name)
    with pytest.raises(GeoError) as raised:
        GeoResolver(path, None, None)
    assert raised.value.reason == "geo-db-invalid"
    assert raised.value.path == path
    assert name in str(raised.value)


def test_a_database_in_the_wrong_role_is_refused() -> None:
    with pytest.raises(GeoError) as raised:
        GeoResolver(None, _db(CITY), None)
    assert raised.value.reason == "geo-db-wrong-type"


def test_the_shipped_labelled_set_has_no_errors_on_maxmind_databases(
    maxmind: GeoResolver,
) -> None:
    report = run_accuracy(load_labelled(None), maxmind, PolicyBook.load(None))
    assert [(m.case.line, m.case.ip, m.actual_reason) for m in report.misses] == []
