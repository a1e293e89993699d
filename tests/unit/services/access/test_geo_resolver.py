"""GeoResolver over the test databases: facts, address edge cases, broken and wrong files."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveward.settings import AuthSettings
from services.access import geo
from services.access.geo import GeoError, GeoFacts, GeoResolver, parse_ip, special_kind
from tests.fixtures.geo import CITY_NETWORKS, GeoDatabases, write_database


def test_an_ipv4_address_gets_country_subdivisions_and_asn(resolver: GeoResolver) -> None:
    facts = resolver.resolve("89.160.20.130")
    assert facts == GeoFacts(
        ip="89.160.20.130",
        network="89.160.20.0/24",
        country="SE",
        subdivision="E",
        asn=29518,
        anonymizers=frozenset(),
        special=None,
        subdivisions=("E",),
        asn_organization="Bredband2 AB",
    )


def test_every_subdivision_level_is_kept_largest_first(resolver: GeoResolver) -> None:
    facts = resolver.resolve("2.125.160.218")
    assert (facts.country, facts.subdivision, facts.subdivisions) == ("GB", "ENG", ("ENG", "WBK"))


def test_an_ipv6_address_resolves_and_is_logged_as_its_48(resolver: GeoResolver) -> None:
    facts = resolver.resolve("2001:480:10::1234")
    assert (facts.country, facts.subdivision, facts.network) == ("US", "CA", "2001:480:10::/48")


def test_ipv4_mapped_ipv6_is_the_ipv4_address(resolver: GeoResolver) -> None:
    assert resolver.resolve("::ffff:89.160.20.130") == resolver.resolve("89.160.20.130")
    assert resolver.resolve("::FFFF:10.0.0.1").special == "private"


def test_anonymiser_flags_become_kinds(resolver: GeoResolver) -> None:
    assert resolver.resolve("65.1.2.3").anonymizers == {"tor", "anonymous"}
    assert resolver.resolve("1.124.213.1").anonymizers == {"tor", "vpn", "anonymous"}
    assert resolver.resolve("6.1.0.4").anonymizers == {"residential_proxy", "anonymous"}
    assert resolver.resolve("2001:480:3a::77").anonymizers == {"public_proxy", "anonymous"}
    assert resolver.resolve("81.2.69.142").anonymizers == set(geo.ANONYMIZER_KINDS)


@pytest.mark.parametrize(
    "ip",
    [
        "8.8.8.8",  # in no database
        "2.3.3.3",  # a record with a continent only
        "214.1.1.1",  # an anycast record with traits only
        "2001:4860:4860::8888",
    ],
)
def test_addresses_without_a_country_have_an_unknown_location(
    resolver: GeoResolver, ip: str
) -> None:
    facts = resolver.resolve(ip)
    assert facts.country is None
    assert facts.subdivision is None
    assert facts.special is None


def test_the_asn_is_known_even_where_the_location_is_not(resolver: GeoResolver) -> None:
    facts = resolver.resolve("2a02:8100::1")
    assert (facts.country, facts.asn) == (None, 31334)


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "shared"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("192.0.2.1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd00::1", "private"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("::1.2.3.4", "reserved"),  # deprecated IPv4-compatible form
        ("abcd:1000::5", "reserved"),  # outside 2000::/3, even though the database lists it
    ],
)
def test_special_ranges_are_classified_without_a_lookup(
    resolver: GeoResolver, ip: str, kind: str
) -> None:
    facts = resolver.resolve(ip)
    assert facts.special == kind
    assert (facts.country, facts.asn, facts.anonymizers) == (None, None, frozenset())


def test_public_addresses_are_not_special() -> None:
    for ip in ("1.1.1.1", "89.160.20.130", "2001:218::1", "2a02:d3c0::1"):
        assert special_kind(parse_ip(ip)) is None


def test_a_zone_id_is_dropped() -> None:
    assert str(parse_ip("fe80::1%eth0")) == "fe80::1"


def test_6to4_is_logged_as_the_embedded_24_not_the_whole_ipv4_address(
    resolver: GeoResolver,
) -> None:
    # 2002:5102:458e::/48 would name 81.2.69.142 exactly.
    assert resolver.resolve("2002:5102:458e::1").network == "2002:5102:4500::/40"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        " ",
        "not-an-ip",
        "1.2.3",
        "256.1.1.1",
        "01.2.3.4",
        "1.2.3.4:443",
        "[::1]",
        "::g",
        "1" * 500,
    ],
)
def test_garbage_is_refused_as_bad_ip(resolver: GeoResolver, garbage: str) -> None:
    with pytest.raises(GeoError) as raised:
        resolver.resolve(garbage)
    assert raised.value.reason == "bad-ip"
    assert len(str(raised.value)) < 120


def test_surrounding_whitespace_is_tolerated(resolver: GeoResolver) -> None:
    assert resolver.resolve(" 89.160.20.130\n").ip == "89.160.20.130"


def test_without_databases_every_public_address_is_unknown() -> None:
    with GeoResolver(None, None, None) as bare:
        facts = bare.resolve("89.160.20.130")
        assert (facts.country, facts.asn, facts.anonymizers) == (None, None, frozenset())
        assert bare.databases == {}


def test_from_settings_uses_the_auth_paths(geo_dbs: GeoDatabases) -> None:
    auth = AuthSettings(geo_city_db=geo_dbs.city, geo_asn_db=geo_dbs.asn)
    with GeoResolver.from_settings(auth) as from_settings:
        assert set(from_settings.databases) == {"city", "asn"}
        assert from_settings.resolve("89.160.20.130").country == "SE"


def test_a_country_database_serves_as_the_location_database(tmp_path: Path) -> None:
    path = write_database(tmp_path / "country.mmdb", "GeoIP2-Country", CITY_NETWORKS)
    with GeoResolver(path, None, None) as country_only:
        facts = country_only.resolve("2.125.160.218")
    assert (facts.country, facts.subdivisions) == ("GB", ())


def test_an_ipv4_only_database_knows_nothing_about_ipv6(tmp_path: Path) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoIP2-City")
    writer.insert_network(IPSet(["89.160.20.0/24"]), {"country": {"iso_code": "SE"}})
    writer.to_db_file(str(tmp_path / "v4.mmdb"))
    with GeoResolver(tmp_path / "v4.mmdb", None, None) as v4:
        assert v4.resolve("89.160.20.1").country == "SE"
        assert v4.resolve("2001:218::1").country is None


def test_verify_decodes_every_record(resolver: GeoResolver) -> None:
    counts = resolver.verify()
    assert set(counts) == {"city", "asn", "anonymous"}
    assert counts["city"] >= len(CITY_NETWORKS)


def _corrupt_data_section(source: Path, target: Path) -> Path:
    """A copy of `source` whose data section is overwritten with an invalid type byte."""
    blob = bytearray(source.read_bytes())
    marker = blob.rindex(b"\xab\xcd\xefMaxMind.com")
    search_tree_end = blob.index(b"\x00" * 16)  # the separator after the search tree
    for offset in range(search_tree_end + 16, marker):
        blob[offset] = 0xFF  # extended type 7 + 255: no such type
    target.write_bytes(bytes(blob))
    return target


def test_a_corrupt_data_section_fails_at_open_naming_the_file(
    geo_dbs: GeoDatabases, tmp_path: Path
) -> None:
    broken = _corrupt_data_section(geo_dbs.city, tmp_path / "broken.mmdb")
    with pytest.raises(GeoError) as raised:
        GeoResolver(broken, geo_dbs.asn, None)
    assert raised.value.reason == "geo-db-invalid"
    assert raised.value.path == broken
    assert str(broken) in str(raised.value)


def test_corruption_past_the_probe_fails_the_lookup_cleanly(
    geo_dbs: GeoDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = _corrupt_data_section(geo_dbs.city, tmp_path / "broken.mmdb")
    monkeypatch.setattr(geo, "PROBE_RECORDS", 0)
    with GeoResolver(broken, None, None) as opened:
        with pytest.raises(GeoError) as raised:
            opened.resolve("89.160.20.130")
        assert raised.value.reason == "geo-db-invalid"
        with pytest.raises(GeoError):
            opened.verify()


@pytest.mark.parametrize(
    "content",
    [b"", b"not a maxmind database", b"\xab\xcd\xefMaxMind.com" + b"\x00" * 10],
)
def test_files_that_are_not_maxmind_dbs_fail_at_open(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoError) as raised:
        GeoResolver(None, None, path)
    assert (raised.value.reason, raised.value.path) == ("geo-db-invalid", path)


def test_a_truncated_download_fails_at_open(geo_dbs: GeoDatabases, tmp_path: Path) -> None:
    path = tmp_path / "truncated.mmdb"
    path.write_bytes(geo_dbs.asn.read_bytes()[:100])
    with pytest.raises(GeoError) as raised:
        GeoResolver(None, path, None)
    assert raised.value.reason == "geo-db-invalid"


def test_a_database_in_the_wrong_role_is_refused(geo_dbs: GeoDatabases) -> None:
    with pytest.raises(GeoError) as raised:
        GeoResolver(geo_dbs.asn, None, None)
    assert raised.value.reason == "geo-db-wrong-type"
    assert "GeoLite2-ASN" in str(raised.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GeoError) as raised:
        GeoResolver(None, None, tmp_path / "nope.mmdb")
    assert raised.value.reason == "geo-db-missing"
    assert "nope.mmdb" in str(raised.value)


def test_a_closed_resolver_refuses_instead_of_answering_unknown(geo_dbs: GeoDatabases) -> None:
    opened = GeoResolver(geo_dbs.city, None, None)
    opened.close()
    with pytest.raises(GeoError) as raised:
        opened.resolve("89.160.20.130")
    assert raised.value.reason == "geo-closed"
