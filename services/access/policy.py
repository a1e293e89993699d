"""The access policy: per-content rules from a TOML file, and the pure decision over them.

`decide_access` checks, in this order, and the first failing check is the decision:

1. content: unlisted content, when the policy book refuses it    -> unknown-content
2. address: a special-purpose address (private, loopback, ...)   -> private-address /
   reserved-address (per the policy's actions; an allowed one skips checks 3-5)
3. anonymiser: VPN, Tor, proxies, hosting                        -> anonymizer-<kind>
4. location: no country for the address                          -> unknown-location
5. country: blocked, outside the allowed list, blacked out       -> country-blocked /
   country-not-allowed / blackout
6. device class                                                  -> device-class-not-allowed
7. concurrent streams                                            -> too-many-streams
8. IP binding to the token (license time only)                   -> ip-moved-network /
   ip-moved-asn / ip-moved-country

Anonymisers come before the location so that an unlocated Tor exit is refused as Tor.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from importlib.resources import files
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from services.access import AccessError
from services.access.geo import ANONYMIZER_KINDS, PRIVATE_USE_KINDS, GeoFacts

Action = Literal["allow", "deny"]
IpBinding = Literal["none", "network", "asn", "country"]
UnknownContent = Literal["default", "deny"]

REASON_CODES: Final = (
    "allowed",
    "unknown-content",
    "private-address",
    "reserved-address",
    *(f"anonymizer-{kind.replace('_', '-')}" for kind in ANONYMIZER_KINDS),
    "unknown-location",
    "country-blocked",
    "country-not-allowed",
    "blackout",
    "device-class-not-allowed",
    "too-many-streams",
    "ip-moved-network",
    "ip-moved-asn",
    "ip-moved-country",
)

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
_ANY = "*"


class PolicyError(AccessError):
    """A policy file that is missing or says something the engine cannot enforce."""

    reason = "policy-invalid"


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One viewer asking to watch: at token issue, or at a license request."""

    content_id: str
    device_class: str
    facts: GeoFacts
    active_streams: int = 0  # concurrent sessions the viewer already has, excluding this one
    home_country: str | None = None  # from the entitlements; see portable_countries
    # The binding carried by the token, checked at license time (None at token issue).
    token_network: str | None = None
    token_asn: int | None = None
    token_country: str | None = None
    max_streams: int | None = None  # from the subscriber's entitlements


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The answer, with a stable machine-readable `reason` and a human-readable `detail`."""

    allowed: bool
    reason: str  # one of REASON_CODES
    detail: str
    policy: str = "default"  # the policy section that decided


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """The rules for one content (or the default section); defaults fail closed."""

    name: str = "default"
    allowed_countries: frozenset[str] | None = None  # None: any country
    blocked_countries: frozenset[str] = frozenset()
    blackouts: frozenset[str] = frozenset()  # "US" (a country) or "US-NY" (a subdivision)
    # Countries between which a subscriber's home rights travel (the EU's portability
    # regulation 2017/1128): a viewer whose home and current country are both listed is
    # checked as if at home.
    portable_countries: frozenset[str] = frozenset()
    denied_anonymizers: frozenset[str] = frozenset(ANONYMIZER_KINDS)
    device_classes: frozenset[str] | None = None  # None: any device class
    max_streams: int | None = None  # None: only the subscriber's entitlement limits
    ip_binding: IpBinding = "asn"
    unknown_location: Action = "deny"
    private_address: Action = "deny"
    reserved_address: Action = "deny"
    # Set on the default policy handed out for unlisted content when the book refuses it.
    refuse_as_unknown: bool = False

    def anonymizer_action(self, kind: str) -> Action:
        return "deny" if kind in self.denied_anonymizers else "allow"


def _deny(policy: ContentPolicy, reason: str, detail: str) -> AccessDecision:
    return AccessDecision(allowed=False, reason=reason, detail=detail, policy=policy.name)


def _denied_anonymizer(anonymizers: frozenset[str], denied: frozenset[str]) -> str | None:
    # MaxMind sets is_anonymous alongside every specific kind, so the "anonymous" action
    # only covers addresses flagged anonymous without a more specific kind.
    specific = [kind for kind in ANONYMIZER_KINDS if kind in anonymizers and kind != "anonymous"]
    if specific:
        return next((kind for kind in specific if kind in denied), None)
    if "anonymous" in anonymizers and "anonymous" in denied:
        return "anonymous"
    return None


def _where(facts: GeoFacts) -> str:
    if facts.special is not None:
        return f"{facts.ip} ({facts.special})"
    place = facts.country or "unknown country"
    if facts.subdivisions:
        place += "-" + "/".join(facts.subdivisions)
    asn = f"AS{facts.asn}" if facts.asn is not None else "unknown ASN"
    return f"{facts.ip} ({place}, {asn}, network {facts.network})"


def _binding_violation(request: AccessRequest, policy: ContentPolicy) -> AccessDecision | None:
    facts = request.facts
    if policy.ip_binding == "none" or request.token_network is None:
        return None
    if policy.ip_binding == "asn" and request.token_asn is not None and facts.asn is not None:
        if facts.asn == request.token_asn:
            return None
        return _deny(
            policy,
            "ip-moved-asn",
            f"token bound to AS{request.token_asn}, request from AS{facts.asn}",
        )
    if (
        policy.ip_binding == "country"
        and request.token_country is not None
        and facts.country is not None
    ):
        if facts.country == request.token_country:
            return None
        return _deny(
            policy,
            "ip-moved-country",
            f"token bound to {request.token_country}, request from {facts.country}",
        )
    # A network binding, or an ASN/country binding whose value is unknown on one side:
    # the network is then the only evidence, and a binding never gets looser than asked.
    if facts.network == request.token_network:
        return None
    fallback = "" if policy.ip_binding == "network" else f" ({policy.ip_binding} unknown)"
    return _deny(
        policy,
        "ip-moved-network",
        f"token bound to network {request.token_network}{fallback}, request from {facts.network}",
    )


def decide_access(request: AccessRequest, policy: ContentPolicy) -> AccessDecision:
    """Whether `request` may proceed under `policy`. Pure: no I/O, no clock."""
    facts = request.facts
    if policy.refuse_as_unknown:
        return _deny(policy, "unknown-content", f"no policy for content {request.content_id!r}")
    if facts.special is not None:
        private = facts.special in PRIVATE_USE_KINDS
        action = policy.private_address if private else policy.reserved_address
        if action == "deny":
            return _deny(
                policy,
                "private-address" if private else "reserved-address",
                f"{facts.ip} is a {facts.special} address, not a viewer's public address",
            )
    else:
        anonymizer = _denied_anonymizer(facts.anonymizers, policy.denied_anonymizers)
        if anonymizer is not None:
            return _deny(
                policy,
                f"anonymizer-{anonymizer.replace('_', '-')}",
                f"{_where(facts)} is a known {anonymizer.replace('_', ' ')} address",
            )
        if facts.country is None:
            if policy.unknown_location == "deny":
                return _deny(
                    policy,
                    "unknown-location",
                    f"no country known for {_where(facts)}; unknown locations are refused",
                )
        else:
            refusal = _country_refusal(facts, request.home_country, policy)
            if refusal is not None:
                return refusal
    device_class = request.device_class.strip().lower()
    if policy.device_classes is not None and device_class not in policy.device_classes:
        return _deny(
            policy,
            "device-class-not-allowed",
            f"device class {device_class!r} is not one of {sorted(policy.device_classes)}",
        )
    limits = [n for n in (policy.max_streams, request.max_streams) if n is not None]
    if limits and request.active_streams >= min(limits):
        return _deny(
            policy,
            "too-many-streams",
            f"{request.active_streams} streams already active, the limit is {min(limits)}",
        )
    violation = _binding_violation(request, policy)
    if violation is not None:
        return violation
    return AccessDecision(
        allowed=True, reason="allowed", detail=f"allowed from {_where(facts)}", policy=policy.name
    )


def _country_refusal(
    facts: GeoFacts, home_country: str | None, policy: ContentPolicy
) -> AccessDecision | None:
    country = facts.country or ""
    regions = {country, *(f"{country}-{sub}" for sub in facts.subdivisions)}
    where = _where(facts)
    home = home_country.strip().upper() if home_country else None
    if home is not None and home != country and {home, country} <= policy.portable_countries:
        # Only the home country is known, not where in it the viewer lives.
        where = f"{where}, checked as at home in {home}"
        country, regions = home, {home}
    if country in policy.blocked_countries:
        return _deny(policy, "country-blocked", f"{where}: {country} is blocked")
    if policy.allowed_countries is not None and country not in policy.allowed_countries:
        return _deny(
            policy,
            "country-not-allowed",
            f"{where}: {country} is not one of {sorted(policy.allowed_countries)}",
        )
    blacked_out = sorted(regions & policy.blackouts)
    if blacked_out:
        return _deny(policy, "blackout", f"{where}: blackout region {blacked_out[0]}")
    return None


_SECTION_KEYS: Final = frozenset(
    {
        "allowed_countries",
        "blocked_countries",
        "blackouts",
        "portable_countries",
        "anonymizers",
        "device_classes",
        "max_streams",
        "ip_binding",
        "unknown_location",
        "private_address",
        "reserved_address",
    }
)
_TOP_KEYS: Final = frozenset({"unknown_content", "default", "content"})


@dataclass(frozen=True, slots=True)
class _Section:
    """Where a value came from, for error messages that point at the line to fix."""

    source: str
    name: str

    def fail(self, key: str, problem: str) -> PolicyError:
        return PolicyError(f"{self.source}: [{self.name}] {key}: {problem}")


def _choice(section: _Section, key: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise section.fail(key, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _strings(section: _Section, key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise section.fail(key, "must be a list of strings")
    return [v.strip() for v in value]


def _codes(section: _Section, key: str, value: object, pattern: re.Pattern[str]) -> frozenset[str]:
    codes = frozenset(v.upper() for v in _strings(section, key, value))
    bad = sorted(c for c in codes if not pattern.match(c))
    if bad:
        raise section.fail(key, f"not ISO 3166 codes: {bad}")
    return codes


def _open_set(
    section: _Section, key: str, value: object, pattern: re.Pattern[str] | None
) -> frozenset[str] | None:
    """A list where ["*"] means any; an empty list would refuse everyone, so it is refused."""
    items = _strings(section, key, value)
    if items == [_ANY]:
        return None
    if not items:
        raise section.fail(key, 'an empty list allows nothing; write ["*"] to allow any')
    if pattern is None:
        return frozenset(v.lower() for v in items)
    return _codes(section, key, items, pattern)


def _apply_section(base: ContentPolicy, name: str, raw: object, source: str) -> ContentPolicy:
    section = _Section(source, name)
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: [{name}] must be a table")
    unknown = sorted(set(raw) - _SECTION_KEYS)
    if unknown:
        raise section.fail(unknown[0], f"unknown key (known: {', '.join(sorted(_SECTION_KEYS))})")
    changes: dict[str, Any] = {"name": name}
    for key, value in raw.items():
        if key == "allowed_countries":
            changes[key] = _open_set(section, key, value, _COUNTRY)
        elif key in ("blocked_countries", "portable_countries"):
            changes[key] = _codes(section, key, value, _COUNTRY)
        elif key == "blackouts":
            changes[key] = _codes(section, key, value, _REGION)
        elif key == "device_classes":
            changes[key] = _open_set(section, key, value, None)
        elif key == "max_streams":
            if value == "unlimited":
                changes[key] = None
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                changes[key] = value
            else:
                raise section.fail(key, f'{value!r} is neither a positive integer nor "unlimited"')
        elif key == "ip_binding":
            changes[key] = _choice(section, key, value, get_args(IpBinding))
        elif key == "anonymizers":
            changes["denied_anonymizers"] = _anonymizers(section, value, base.denied_anonymizers)
        else:
            changes[key] = _choice(section, key, value, get_args(Action))
    return replace(base, **changes)


def _anonymizers(section: _Section, raw: object, inherited: frozenset[str]) -> frozenset[str]:
    if not isinstance(raw, dict):
        raise section.fail("anonymizers", "must be a table of kind = allow|deny")
    denied = set(inherited)
    for kind, value in raw.items():
        if kind not in ANONYMIZER_KINDS:
            raise section.fail(
                f"anonymizers.{kind}", f"unknown kind (known: {', '.join(ANONYMIZER_KINDS)})"
            )
        if _choice(section, f"anonymizers.{kind}", value, get_args(Action)) == "deny":
            denied.add(kind)
        else:
            denied.discard(kind)
    return frozenset(denied)


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """Every content's policy, from one TOML file; see policies/default.toml for the format."""

    default: ContentPolicy = ContentPolicy()
    # Exact content ids first, then glob patterns ("sports-*") in file order.
    contents: Mapping[str, ContentPolicy] = field(default_factory=dict)
    patterns: tuple[tuple[str, ContentPolicy], ...] = ()
    unknown_content: UnknownContent = "default"
    source: str = "<defaults>"

    @classmethod
    def load(cls, path: Path | None) -> PolicyBook:
        """The book in `path`, or the shipped default when None; PolicyError if unusable."""
        if path is None:
            resource = files("services.access") / "policies" / "default.toml"
            return cls.parse(resource.read_text(encoding="utf-8"), "shipped default policy")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise PolicyError(
                f"policy file {path} does not exist", reason="policy-missing"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"policy file {path} cannot be read: {exc}") from exc
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<policy>") -> PolicyBook:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
        unknown = sorted(set(raw) - _TOP_KEYS)
        if unknown:
            raise PolicyError(f"{source}: unknown top-level key {unknown[0]!r}")
        unknown_content = cast(
            UnknownContent,
            _choice(
                _Section(source, "top level"),
                "unknown_content",
                raw.get("unknown_content", "default"),
                get_args(UnknownContent),
            ),
        )
        default = _apply_section(ContentPolicy(), "default", raw.get("default", {}), source)
        sections = raw.get("content", {})
        if not isinstance(sections, dict):
            raise PolicyError(f"{source}: [content] must hold one table per content id")
        contents: dict[str, ContentPolicy] = {}
        patterns: list[tuple[str, ContentPolicy]] = []
        for content_id, section in sections.items():
            policy = _apply_section(default, content_id, section, source)
            if any(ch in content_id for ch in "*?["):
                patterns.append((content_id, policy))
            else:
                contents[content_id] = policy
        return cls(default, contents, tuple(patterns), unknown_content, source)

    def for_content(self, content_id: str) -> ContentPolicy:
        """The policy of `content_id`: its own section, a matching pattern, or the default.

        Unlisted content gets the default section, or, when the book says
        `unknown_content = "deny"`, a policy that `decide_access` refuses as unknown-content.
        """
        policy = self.contents.get(content_id)
        if policy is not None:
            return policy
        for pattern, pattern_policy in self.patterns:
            if fnmatchcase(content_id, pattern):
                return pattern_policy
        if self.unknown_content == "deny":
            return replace(self.default, refuse_as_unknown=True)
        return self.default
