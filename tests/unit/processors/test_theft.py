"""Theft rules over one session's uses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processors.theft import SessionUses, TheftRules, Use, observe_use

RULES = TheftRules(window_ms=300_000, max_networks=2)


def _use(at: int, network: str = "203.0.113.0/24", country: str = "DE", device: str = "d1") -> Use:
    return Use(
        at_ms=at, token_id="t1", network=network, asn=64500, country=country, device_ref=device
    )


def _fold(*uses: Use) -> list[str | None]:
    state, rules = SessionUses(), []
    for use in uses:
        state, verdict = observe_use(state, use, RULES)
        rules.append(None if verdict is None else verdict.rule)
    return rules


def test_a_viewer_watching_from_one_place_is_never_flagged() -> None:
    assert _fold(*(_use(i * 10_000) for i in range(50))) == [None] * 50


def test_mobile_hand_over_between_two_networks_is_fine() -> None:
    assert _fold(_use(0), _use(1_000, network="198.51.100.0/24")) == [None, None]


def test_a_third_network_at_once_is_theft() -> None:
    rules = _fold(_use(0), _use(1, network="198.51.100.0/24"), _use(2, network="192.0.2.0/24"))
    assert rules == [None, None, "too-many-networks"]


def test_two_countries_inside_the_window_is_impossible_travel() -> None:
    assert _fold(_use(0), _use(60_000, country="BR")) == [None, "impossible-travel"]


def test_countries_far_apart_in_time_are_a_journey_not_theft() -> None:
    assert _fold(_use(0), _use(301_000, country="BR")) == [None, None]


def test_an_unknown_country_contradicts_nothing() -> None:
    assert _fold(_use(0), _use(1, country="--")) == [None, None]


def test_another_device_on_the_same_session_is_theft() -> None:
    assert _fold(_use(0), _use(1, device="d2")) == [None, "device-mismatch"]


def test_a_flagged_session_yields_one_verdict_only() -> None:
    rules = _fold(_use(0), _use(1, country="BR"), _use(2, country="US"), _use(3, country="FR"))
    assert rules == [None, "impossible-travel", None, None]


@given(st.lists(st.integers(0, 10_000_000), min_size=1, max_size=60))
def test_the_remembered_uses_stay_bounded_and_inside_the_window(times: list[int]) -> None:
    state = SessionUses()
    for at in sorted(times):
        state, _ = observe_use(state, _use(at), RULES)
        assert len(state.uses) <= 32
        assert all(u.at_ms > at - RULES.window_ms for u in state.uses)
