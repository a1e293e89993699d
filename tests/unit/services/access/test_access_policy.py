"""decide_access: each reason, the order of checks, and invariants over generated requests."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.access.geo import ANONYMIZER_KINDS, GeoFacts
from services.access.policy import (
    REASON_CODES,
    AccessRequest,
    ContentPolicy,
    decide_access,
)

SE = GeoFacts(
    ip="89.160.20.130",
    network="89.160.20.0/24",
    country="SE",
    subdivision="E",
    asn=29518,
    anonymizers=frozenset(),
    special=None,
    subdivisions=("E",),
)
OPEN = ContentPolicy(name="open", denied_anonymizers=frozenset(), ip_binding="none")


def _request(facts: GeoFacts = SE, **fields: object) -> AccessRequest:
    return AccessRequest(
        content_id=str(fields.pop("content_id", "c1")),
        device_class=str(fields.pop("device_class", "web")),
        facts=facts,
        **fields,  # type: ignore[arg-type]
    )


def _reason(request: AccessRequest, policy: ContentPolicy) -> str:
    decision = decide_access(request, policy)
    assert decision.allowed == (decision.reason == "allowed")
    assert decision.reason in REASON_CODES
    assert decision.detail
    return decision.reason


def test_a_located_viewer_on_a_permissive_policy_is_allowed() -> None:
    decision = decide_access(_request(), ContentPolicy())
    assert (decision.allowed, decision.reason, decision.policy) == (True, "allowed", "default")
    assert "89.160.20.130" in decision.detail


def test_unlisted_content_is_refused_when_the_book_says_so() -> None:
    assert _reason(_request(), replace(OPEN, refuse_as_unknown=True)) == "unknown-content"


@pytest.mark.parametrize(
    ("special", "reason"),
    [
        ("private", "private-address"),
        ("shared", "private-address"),
        ("loopback", "private-address"),
        ("link-local", "private-address"),
        ("reserved", "reserved-address"),
        ("documentation", "reserved-address"),
        ("multicast", "reserved-address"),
        ("unspecified", "reserved-address"),
    ],
)
def test_special_addresses_are_refused_by_default_with_their_own_reason(
    special: str, reason: str
) -> None:
    facts = replace(SE, country=None, subdivisions=(), asn=None, special=special)
    assert _reason(_request(facts), ContentPolicy()) == reason


def test_an_allowed_private_address_skips_the_location_checks_only() -> None:
    loopback = replace(SE, ip="127.0.0.1", network="127.0.0.0/24", country=None, special="loopback")
    policy = ContentPolicy(private_address="allow", allowed_countries=frozenset({"GB"}))
    assert _reason(_request(loopback), policy) == "allowed"
    web_only = replace(policy, device_classes=frozenset({"web"}))
    assert _reason(_request(loopback, device_class="tv"), web_only) == "device-class-not-allowed"
    reserved_only = replace(policy, reserved_address="allow", private_address="deny")
    assert _reason(_request(loopback), reserved_only) == "private-address"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"anonymous", "vpn"}, "anonymizer-vpn"),
        ({"anonymous", "tor", "vpn"}, "anonymizer-tor"),
        ({"anonymous", "hosting"}, "anonymizer-hosting"),
        ({"anonymous", "public_proxy"}, "anonymizer-public-proxy"),
        ({"anonymous", "residential_proxy"}, "anonymizer-residential-proxy"),
        ({"anonymous"}, "anonymizer-anonymous"),
        (set(ANONYMIZER_KINDS), "anonymizer-tor"),
    ],
)
def test_anonymisers_are_refused_by_their_most_specific_kind(flags: set[str], reason: str) -> None:
    facts = replace(SE, anonymizers=frozenset(flags))
    assert _reason(_request(facts), ContentPolicy()) == reason


def test_allowing_a_kind_lets_it_through_even_though_it_is_also_anonymous() -> None:
    hosting = replace(SE, anonymizers=frozenset({"anonymous", "hosting"}))
    policy = ContentPolicy(denied_anonymizers=frozenset({"tor", "vpn", "anonymous"}))
    assert _reason(_request(hosting), policy) == "allowed"
    both = replace(SE, anonymizers=frozenset({"anonymous", "hosting", "vpn"}))
    assert _reason(_request(both), policy) == "anonymizer-vpn"


def test_an_unlocated_anonymiser_is_refused_as_the_anonymiser() -> None:
    tor = replace(SE, country=None, subdivisions=(), anonymizers=frozenset({"anonymous", "tor"}))
    assert _reason(_request(tor), ContentPolicy()) == "anonymizer-tor"


def test_an_unknown_location_fails_closed_unless_allowed() -> None:
    unknown = replace(SE, country=None, subdivision=None, subdivisions=())
    assert _reason(_request(unknown), ContentPolicy()) == "unknown-location"
    allowing = ContentPolicy(unknown_location="allow", allowed_countries=frozenset({"SE"}))
    assert _reason(_request(unknown), allowing) == "allowed"


def test_country_rules() -> None:
    assert _reason(_request(), replace(OPEN, blocked_countries=frozenset({"SE"}))) == (
        "country-blocked"
    )
    assert _reason(_request(), replace(OPEN, allowed_countries=frozenset({"NO"}))) == (
        "country-not-allowed"
    )
    both = replace(OPEN, allowed_countries=frozenset({"SE"}), blocked_countries=frozenset({"SE"}))
    assert _reason(_request(), both) == "country-blocked"


@pytest.mark.parametrize(
    ("blackouts", "reason"),
    [
        ({"SE"}, "blackout"),
        ({"SE-E"}, "blackout"),
        ({"SE-AB"}, "allowed"),
        ({"GB-ENG"}, "allowed"),
    ],
)
def test_blackouts_match_the_country_or_any_subdivision(blackouts: set[str], reason: str) -> None:
    assert _reason(_request(), replace(OPEN, blackouts=frozenset(blackouts))) == reason


def test_a_lower_subdivision_level_is_matched_too() -> None:
    west_berkshire = replace(SE, country="GB", subdivision="ENG", subdivisions=("ENG", "WBK"))
    assert _reason(_request(west_berkshire), replace(OPEN, blackouts=frozenset({"GB-WBK"}))) == (
        "blackout"
    )


def test_portability_checks_a_travelling_subscriber_as_at_home() -> None:
    in_spain = replace(SE, country="ES", subdivision=None, subdivisions=())
    policy = replace(
        OPEN,
        allowed_countries=frozenset({"SE"}),
        blackouts=frozenset({"ES"}),
        portable_countries=frozenset({"ES", "SE", "DE"}),
    )
    assert _reason(_request(in_spain, home_country="se"), policy) == "allowed"
    assert _reason(_request(in_spain, home_country="DE"), policy) == "country-not-allowed"
    assert _reason(_request(in_spain), policy) == "country-not-allowed"
    in_us = replace(in_spain, country="US")
    assert _reason(_request(in_us, home_country="SE"), policy) == "country-not-allowed"


def test_device_classes_are_compared_case_insensitively() -> None:
    policy = replace(OPEN, device_classes=frozenset({"tv", "web"}))
    assert _reason(_request(device_class=" TV "), policy) == "allowed"
    assert _reason(_request(device_class="console"), policy) == "device-class-not-allowed"


@pytest.mark.parametrize(
    ("policy_limit", "entitled", "active", "reason"),
    [
        (None, None, 50, "allowed"),
        (3, None, 2, "allowed"),
        (3, None, 3, "too-many-streams"),
        (None, 2, 2, "too-many-streams"),
        (3, 5, 3, "too-many-streams"),
        (5, 1, 1, "too-many-streams"),
        (5, 0, 0, "too-many-streams"),
    ],
)
def test_the_lower_stream_limit_applies(
    policy_limit: int | None, entitled: int | None, active: int, reason: str
) -> None:
    request = _request(active_streams=active, max_streams=entitled)
    assert _reason(request, replace(OPEN, max_streams=policy_limit)) == reason


AU_SAME_ASN = replace(
    SE, ip="214.0.1.5", network="214.0.1.0/24", country="AU", subdivisions=(), asn=721
)
US = replace(SE, ip="214.78.120.5", network="214.78.120.0/24", country="US", asn=721)


def _license(facts: GeoFacts, token: GeoFacts) -> AccessRequest:
    return _request(
        facts, token_network=token.network, token_asn=token.asn, token_country=token.country
    )


@pytest.mark.parametrize(
    ("binding", "facts", "reason"),
    [
        ("none", AU_SAME_ASN, "allowed"),
        ("network", US, "allowed"),
        ("network", replace(US, ip="214.78.121.9", network="214.78.121.0/24"), "ip-moved-network"),
        ("asn", AU_SAME_ASN, "allowed"),
        ("asn", SE, "ip-moved-asn"),
        ("country", replace(US, network="214.78.121.0/24", asn=7018), "allowed"),
        ("country", AU_SAME_ASN, "ip-moved-country"),
    ],
)
def test_ip_binding_at_license_time(binding: str, facts: GeoFacts, reason: str) -> None:
    policy = replace(OPEN, ip_binding=binding)  # type: ignore[arg-type]
    assert _reason(_license(facts, US), policy) == reason


def test_an_unknown_asn_or_country_tightens_the_binding_to_the_network() -> None:
    token_without_asn = replace(US, asn=None)
    same_network = replace(US, ip="214.78.120.77")
    elsewhere = replace(US, network="214.78.121.0/24")
    policy = replace(OPEN, ip_binding="asn")
    assert _reason(_license(same_network, token_without_asn), policy) == "allowed"
    assert _reason(_license(elsewhere, token_without_asn), policy) == "ip-moved-network"
    unlocated = replace(elsewhere, country=None)
    country = replace(OPEN, ip_binding="country", unknown_location="allow")
    assert _reason(_license(unlocated, US), country) == "ip-moved-network"


def test_no_binding_is_checked_at_token_issue() -> None:
    assert _reason(_request(AU_SAME_ASN), replace(OPEN, ip_binding="network")) == "allowed"


def test_checks_run_in_the_documented_order() -> None:
    """Each step's refusal wins over every later one."""
    everything_wrong = replace(
        SE, country="KP", anonymizers=frozenset({"anonymous", "vpn"}), network="1.1.1.0/24"
    )
    request = _license(everything_wrong, US)
    request = replace(request, device_class="toaster", active_streams=9)
    policy = ContentPolicy(
        blocked_countries=frozenset({"KP"}),
        device_classes=frozenset({"web"}),
        max_streams=1,
        ip_binding="network",
    )
    steps = [
        ("unknown-content", {"refuse_as_unknown": True}),
        ("anonymizer-vpn", {"refuse_as_unknown": False}),
        ("country-blocked", {"denied_anonymizers": frozenset()}),
        ("device-class-not-allowed", {"blocked_countries": frozenset()}),
        ("too-many-streams", {"device_classes": None}),
        ("ip-moved-network", {"max_streams": None}),
        ("allowed", {"ip_binding": "none"}),
    ]
    policy = replace(policy, refuse_as_unknown=True)
    for reason, relax in steps:
        policy = replace(policy, **relax)  # type: ignore[arg-type]
        assert _reason(request, policy) == reason


# Invariants over generated requests and policies.

COUNTRIES = ("SE", "GB", "US", "KP", "JP")
countries = st.sampled_from(COUNTRIES)
kinds = st.frozensets(st.sampled_from(ANONYMIZER_KINDS))
specials = st.sampled_from([None, None, None, "private", "loopback", "reserved", "multicast"])


@st.composite
def facts_strategy(draw: st.DrawFn) -> GeoFacts:
    special = draw(specials)
    country = None if special else draw(st.one_of(st.none(), countries))
    subdivisions = tuple(draw(st.lists(st.sampled_from(["ENG", "E", "CA"]), max_size=2)))
    return GeoFacts(
        ip="192.0.2.1",
        network=draw(st.sampled_from(["192.0.2.0/24", "198.51.100.0/24"])),
        country=country,
        subdivision=subdivisions[0] if subdivisions and country else None,
        asn=None if special else draw(st.one_of(st.none(), st.sampled_from([721, 29518]))),
        anonymizers=frozenset() if special else draw(kinds),
        special=special,
        subdivisions=subdivisions if country else (),
    )


actions = st.sampled_from(["allow", "deny"])
policies = st.builds(
    ContentPolicy,
    allowed_countries=st.one_of(st.none(), st.frozensets(countries, min_size=1)),
    blocked_countries=st.frozensets(countries),
    blackouts=st.frozensets(st.sampled_from(["SE", "GB-ENG", "US-CA", "JP"])),
    denied_anonymizers=kinds,
    device_classes=st.one_of(st.none(), st.frozensets(st.sampled_from(["web", "tv"]), min_size=1)),
    max_streams=st.one_of(st.none(), st.integers(1, 4)),
    ip_binding=st.sampled_from(["none", "network", "asn", "country"]),
    unknown_location=actions,
    private_address=actions,
    reserved_address=actions,
)
requests = st.builds(
    AccessRequest,
    content_id=st.just("c1"),
    device_class=st.sampled_from(["web", "tv", "toaster"]),
    facts=facts_strategy(),
    active_streams=st.integers(0, 5),
    token_network=st.one_of(st.none(), st.sampled_from(["192.0.2.0/24", "198.51.100.0/24"])),
    token_asn=st.one_of(st.none(), st.sampled_from([721, 29518])),
    token_country=st.one_of(st.none(), countries),
    max_streams=st.one_of(st.none(), st.integers(0, 4)),
)


@given(request=requests, policy=policies)
def test_every_decision_has_a_known_reason_and_is_repeatable(
    request: AccessRequest, policy: ContentPolicy
) -> None:
    first = decide_access(request, policy)
    assert first.reason in REASON_CODES
    assert first.allowed == (first.reason == "allowed")
    assert decide_access(request, policy) == first


@given(request=requests, policy=policies)
def test_a_blocked_country_is_never_allowed(request: AccessRequest, policy: ContentPolicy) -> None:
    if request.facts.country in policy.blocked_countries:
        assert not decide_access(request, policy).allowed


@given(request=requests, policy=policies)
def test_unknown_locations_fail_closed(request: AccessRequest, policy: ContentPolicy) -> None:
    facts = request.facts
    if facts.special is None and facts.country is None and policy.unknown_location == "deny":
        assert not decide_access(request, policy).allowed


@given(request=requests, policy=policies)
def test_an_allowed_request_satisfies_every_rule(
    request: AccessRequest, policy: ContentPolicy
) -> None:
    if not decide_access(request, policy).allowed:
        return
    facts = request.facts
    if facts.special is None:
        assert not (facts.anonymizers - {"anonymous"}) & policy.denied_anonymizers
        if facts.country is not None:
            assert facts.country not in policy.blocked_countries
            assert policy.allowed_countries is None or facts.country in policy.allowed_countries
            assert facts.country not in policy.blackouts
    if policy.device_classes is not None:
        assert request.device_class in policy.device_classes
    for limit in (policy.max_streams, request.max_streams):
        assert limit is None or request.active_streams < limit
    if policy.ip_binding != "none" and request.token_network is not None:
        moved_network = facts.network != request.token_network
        same_asn = facts.asn is not None and facts.asn == request.token_asn
        same_country = facts.country is not None and facts.country == request.token_country
        assert not moved_network or same_asn or same_country


@given(request=requests, policy=policies, extra=countries, kind=st.sampled_from(ANONYMIZER_KINDS))
def test_tightening_a_policy_never_turns_a_refusal_into_an_allowance(
    request: AccessRequest, policy: ContentPolicy, extra: str, kind: str
) -> None:
    stricter = replace(
        policy,
        blocked_countries=policy.blocked_countries | {extra},
        denied_anonymizers=policy.denied_anonymizers | {kind},
        max_streams=min(policy.max_streams or 4, 3),
        unknown_location="deny",
    )
    if decide_access(request, stricter).allowed:
        assert decide_access(request, policy).allowed
