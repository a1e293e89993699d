"""Where a client address is: country, subdivision, ASN and anonymiser flags from MaxMind DBs.

The three databases are optional and independent: a location database (GeoIP2/GeoLite2
City or Country), an ASN database (GeoLite2-ASN or GeoIP2-ISP) and an anonymous-IP
database (GeoIP2-Anonymous-IP). A missing database simply leaves its facts unknown; the
policy decides what unknown means (fail closed by default for the location).

Special-purpose addresses (private, loopback, reserved, ...) are classified here from the
IANA registries and never looked up: their database entries, if any, say nothing about
where the viewer is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from typing import Any, Final

import maxminddb
from geoip2.models import ASN, ISP, AnonymousIP, City, Country
from maxminddb import InvalidDatabaseError

from liveward.settings import AuthSettings
from services.access import AccessError

IPAddress = IPv4Address | IPv6Address

# The anonymiser kinds the policy can act on, in the order a decision reports them:
# the most specific kinds first, the generic MaxMind `is_anonymous` flag last.
_ANONYMIZER_FLAGS: Final = (
    ("tor", "is_tor_exit_node"),
    ("vpn", "is_anonymous_vpn"),
    ("public_proxy", "is_public_proxy"),
    ("residential_proxy", "is_residential_proxy"),
    ("hosting", "is_hosting_provider"),
    ("anonymous", "is_anonymous"),
)
ANONYMIZER_KINDS: Final = tuple(kind for kind, _ in _ANONYMIZER_FLAGS)

# Special kinds a real viewer can legitimately have behind an internal network or on a
# developer's machine; every other special kind can never be a viewer's address.
PRIVATE_USE_KINDS: Final = frozenset({"private", "shared", "loopback", "link-local"})

# First match wins, so narrower ranges come before the ranges that contain them.
_SPECIAL_V4: Final = tuple(
    (IPv4Network(cidr), kind)
    for cidr, kind in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared"),  # carrier-grade NAT (RFC 6598)
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),  # the retired 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes the limited broadcast 255.255.255.255
    )
)
_SPECIAL_V6: Final = tuple(
    (IPv6Network(cidr), kind)
    for cidr, kind in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("2001:2::/48", "benchmarking"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "private"),  # unique local addresses
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)
# Outside 2000::/3 nothing is allocated for global unicast, so the rest is reserved.
_GLOBAL_UNICAST_V6: Final = IPv6Network("2000::/3")
_SIX_TO_FOUR: Final = IPv6Network("2002::/16")

# Records decoded when a database opens. A file that is broken throughout (truncated,
# wrong encoding) fails there; `GeoResolver.verify()` decodes every record.
PROBE_RECORDS: Final = 1024


class GeoError(AccessError):
    """A client address or a geo database that cannot be used; `path` names the file."""

    reason = "geo-error"

    def __init__(self, message: str, *, reason: str, path: Path | None = None) -> None:
        super().__init__(message, reason=reason)
        self.path = path


@dataclass(frozen=True, slots=True)
class GeoFacts:
    """Everything the policy needs to know about one client address."""

    ip: str  # normalised: IPv4-mapped IPv6 becomes IPv4, IPv6 zone ids are dropped
    network: str  # the pseudonymous network we may log: /24 (IPv4), /48 (IPv6), /40 (6to4)
    country: str | None  # ISO 3166-1 alpha-2 where the address is used; None if unknown
    subdivision: str | None  # the largest subdivision's ISO 3166-2 code without country
    asn: int | None
    anonymizers: frozenset[str]  # a subset of ANONYMIZER_KINDS
    special: str | None  # "private", "loopback", "reserved", ...; None for public addresses
    subdivisions: tuple[str, ...] = ()  # every subdivision level, largest first
    asn_organization: str | None = None


def parse_ip(text: str) -> IPAddress:
    """The address in `text`, normalised; GeoError(reason="bad-ip") for anything else.

    IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the IPv4 address a dual-stack socket received,
    so it becomes that address. IPv6 zone ids (`%eth0`) name a local interface, not the
    viewer, and are dropped.
    """
    try:
        address = ip_address(text.strip())
    except ValueError as exc:
        raise GeoError(f"not an IP address: {text[:64]!r}", reason="bad-ip") from exc
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return IPv6Address(int(address))
    return address


def special_kind(address: IPAddress) -> str | None:
    """The special-purpose kind of `address` ("private", "reserved", ...), None if public."""
    if isinstance(address, IPv4Address):
        for network4, kind in _SPECIAL_V4:
            if address in network4:
                return kind
        return None
    for network6, kind in _SPECIAL_V6:
        if address in network6:
            return kind
    return None if address in _GLOBAL_UNICAST_V6 else "reserved"


def pseudonymous_network(address: IPAddress) -> str:
    """The network `address` may be logged as: IPv4 /24, IPv6 /48.

    6to4 addresses (2002::/16) carry the whole IPv4 address in bits 16-47, so their /48
    would name the viewer's exact IPv4 address; they are cut to /40, the embedded /24.
    """
    if isinstance(address, IPv4Address):
        return str(IPv4Network((address, 24), strict=False))
    prefix = 40 if address in _SIX_TO_FOUR else 48
    return str(IPv6Network((address, prefix), strict=False))


GeoModel = Country | ASN | AnonymousIP
ModelBuilder = Callable[[IPAddress, int, Mapping[str, Any]], GeoModel]


def _city_model(address: IPAddress, prefix_len: int, record: Mapping[str, Any]) -> GeoModel:
    return City(["en"], ip_address=address, prefix_len=prefix_len, **record)


def _country_model(address: IPAddress, prefix_len: int, record: Mapping[str, Any]) -> GeoModel:
    return Country(["en"], ip_address=address, prefix_len=prefix_len, **record)


def _asn_model(address: IPAddress, prefix_len: int, record: Mapping[str, Any]) -> GeoModel:
    return ASN(address, prefix_len=prefix_len, **record)


def _isp_model(address: IPAddress, prefix_len: int, record: Mapping[str, Any]) -> GeoModel:
    return ISP(address, prefix_len=prefix_len, **record)


def _anonymous_model(address: IPAddress, prefix_len: int, record: Mapping[str, Any]) -> GeoModel:
    return AnonymousIP(address, prefix_len=prefix_len, **record)


# Which MaxMind database types each role accepts (matched as substrings of the metadata's
# database_type, as geoip2 does), and the geoip2 model that reads their records.
_ROLES: Final[dict[str, tuple[tuple[str, ModelBuilder], ...]]] = {
    "city": (("City", _city_model), ("Enterprise", _city_model), ("Country", _country_model)),
    "asn": (("ASN", _asn_model), ("ISP", _isp_model)),
    "anonymous": (("Anonymous-IP", _anonymous_model), ("Anonymous-Plus", _anonymous_model)),
}


class _GeoDatabase:
    """One open MaxMind database in one role, answering lookups with geoip2 models."""

    def __init__(self, path: Path, role: str) -> None:
        self.path = path
        self.role = role
        if not path.is_file():
            raise GeoError(
                f"{role} database {path} does not exist", reason="geo-db-missing", path=path
            )
        try:
            self._reader = maxminddb.open_database(str(path))
            metadata = self._reader.metadata()
        except (InvalidDatabaseError, ValueError, OSError) as exc:
            raise GeoError(
                f"{role} database {path} is not a valid MaxMind DB: {exc}",
                reason="geo-db-invalid",
                path=path,
            ) from exc
        self.database_type: str = metadata.database_type
        self.ip_version: int = metadata.ip_version
        model = next((m for kind, m in _ROLES[role] if kind in self.database_type), None)
        if model is None:
            self._reader.close()
            wanted = ", ".join(kind for kind, _ in _ROLES[role])
            raise GeoError(
                f"{path} is a {self.database_type!r} database; the {role} database must be "
                f"one of: {wanted}",
                reason="geo-db-wrong-type",
                path=path,
            )
        self._model = model
        try:
            self._check(itertools.islice(self._reader, PROBE_RECORDS))
        except GeoError:
            self._reader.close()
            raise

    def _check(self, records: Iterable[tuple[IPv4Network | IPv6Network, object]]) -> int:
        count = 0
        try:
            for network, record in records:
                if not isinstance(record, dict):
                    raise InvalidDatabaseError(f"record of {network} is not a map")
                self._model(network.network_address, network.prefixlen, record)
                count += 1
        except (InvalidDatabaseError, ValueError, TypeError) as exc:
            raise GeoError(
                f"{self.role} database {self.path} has a corrupt record: {exc}",
                reason="geo-db-invalid",
                path=self.path,
            ) from exc
        return count

    def verify(self) -> int:
        """Decode every record; the number of networks, or GeoError(geo-db-invalid)."""
        return self._check(iter(self._reader))

    def lookup(self, address: IPAddress) -> GeoModel | None:
        """The geoip2 model for `address`, None when the database has no entry for it."""
        if address.version == 6 and self.ip_version == 4:
            return None
        try:
            record, prefix_len = self._reader.get_with_prefix_len(address)
            if record is None:
                return None
            if not isinstance(record, dict):
                raise InvalidDatabaseError(f"record for {address} is not a map")
            return self._model(address, prefix_len, record)
        except (InvalidDatabaseError, ValueError, TypeError) as exc:
            raise GeoError(
                f"{self.role} database {self.path} failed looking up {address}: {exc}",
                reason="geo-db-invalid",
                path=self.path,
            ) from exc

    def close(self) -> None:
        self._reader.close()


class GeoResolver:
    """Resolves client addresses to GeoFacts from up to three MaxMind databases.

    Opening checks every file (it exists, is a MaxMind DB of the right type, and its first
    records decode), so a broken database fails at start-up with GeoError naming it,
    never at the first viewer. `close()` releases the files.
    """

    def __init__(self, city_db: Path | None, asn_db: Path | None, anonymous_db: Path | None):
        self._databases: dict[str, _GeoDatabase] = {}
        self._closed = False
        try:
            for role, path in (("city", city_db), ("asn", asn_db), ("anonymous", anonymous_db)):
                if path is not None:
                    self._databases[role] = _GeoDatabase(Path(path), role)
        except GeoError:
            self.close()
            raise

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> GeoResolver:
        return cls(auth.geo_city_db, auth.geo_asn_db, auth.geo_anonymous_db)

    @property
    def databases(self) -> dict[str, str]:
        """Role -> "database_type (path)" for every open database, for operators."""
        return {role: f"{db.database_type} ({db.path})" for role, db in self._databases.items()}

    def verify(self) -> dict[str, int]:
        """Decode every record of every database: role -> networks, or GeoError."""
        return {role: db.verify() for role, db in self._databases.items()}

    def resolve(self, ip: str) -> GeoFacts:
        """The facts about `ip`; GeoError(reason="bad-ip") when it is not an address."""
        if self._closed:
            raise GeoError("the geo resolver is closed", reason="geo-closed")
        address = parse_ip(ip)
        network = pseudonymous_network(address)
        special = special_kind(address)
        if special is not None:
            return GeoFacts(
                ip=str(address),
                network=network,
                country=None,
                subdivision=None,
                asn=None,
                anonymizers=frozenset(),
                special=special,
            )
        country, subdivisions = self._location(address)
        asn, asn_organization = self._asn(address)
        return GeoFacts(
            ip=str(address),
            network=network,
            country=country,
            subdivision=subdivisions[0] if subdivisions else None,
            asn=asn,
            anonymizers=self._anonymizers(address),
            special=None,
            subdivisions=subdivisions,
            asn_organization=asn_organization,
        )

    def _lookup(self, role: str, address: IPAddress) -> GeoModel | None:
        db = self._databases.get(role)
        return db.lookup(address) if db is not None else None

    def _location(self, address: IPAddress) -> tuple[str | None, tuple[str, ...]]:
        model = self._lookup("city", address)
        # A record without a country (anycast, satellite, continent-only) is no location.
        if not isinstance(model, Country) or model.country.iso_code is None:
            return None, ()
        if not isinstance(model, City):
            return model.country.iso_code, ()
        return model.country.iso_code, tuple(
            s.iso_code for s in model.subdivisions if s.iso_code is not None
        )

    def _asn(self, address: IPAddress) -> tuple[int | None, str | None]:
        model = self._lookup("asn", address)
        if not isinstance(model, ASN):
            return None, None
        return model.autonomous_system_number, model.autonomous_system_organization

    def _anonymizers(self, address: IPAddress) -> frozenset[str]:
        model = self._lookup("anonymous", address)
        if not isinstance(model, AnonymousIP):
            return frozenset()
        return frozenset(kind for kind, flag in _ANONYMIZER_FLAGS if getattr(model, flag))

    def close(self) -> None:
        """Release the database files; resolving afterwards raises GeoError(geo-closed)."""
        self._closed = True
        for db in self._databases.values():
            db.close()

    def __enter__(self) -> GeoResolver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
