"""Token buckets per client network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.bridge.ratelimit import TokenBuckets, client_network


def test_a_burst_is_allowed_then_the_wait_until_it_fits() -> None:
    buckets = TokenBuckets(rate=10, burst=30, max_clients=10)

    assert [buckets.take("a", 10, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 5, 0.0) == pytest.approx(0.5)
    assert buckets.take("a", 5, 0.5) == 0.0
    assert buckets.take("b", 30, 0.5) == 0.0


def test_a_request_larger_than_the_burst_passes_an_idle_bucket() -> None:
    buckets = TokenBuckets(rate=1, burst=10, max_clients=10)

    assert buckets.take("a", 1_000, 0.0) == 0.0
    assert buckets.take("a", 1_000, 1.0) == pytest.approx(9.0)


def test_a_clock_going_backwards_does_not_mint_tokens() -> None:
    buckets = TokenBuckets(rate=10, burst=10, max_clients=10)
    buckets.take("a", 10, 100.0)

    assert buckets.take("a", 1, 50.0) > 0


def test_idle_clients_are_forgotten_first() -> None:
    buckets = TokenBuckets(rate=1, burst=10, max_clients=3)
    buckets.take("busy", 10, 0.0)
    buckets.take("idle-1", 1, 0.0)
    buckets.take("idle-2", 1, 0.0)

    buckets.take("new", 1, 5.0)

    assert len(buckets) == 2
    assert buckets.take("busy", 10, 5.0) > 0  # still remembered as drained


@given(
    st.lists(
        st.tuples(st.floats(0, 2, allow_nan=False), st.floats(0.1, 50, allow_nan=False)),
        max_size=60,
    )
)
def test_admitted_cost_never_exceeds_burst_plus_refill(requests: list[tuple[float, float]]) -> None:
    rate, burst = 20.0, 50.0
    buckets = TokenBuckets(rate=rate, burst=burst, max_clients=10)
    now, admitted = 0.0, 0.0
    for gap, cost in requests:
        now += gap
        if buckets.take("c", cost, now) == 0.0:
            admitted += cost

    assert admitted <= burst + rate * now + 1e-6


@pytest.mark.parametrize(
    ("ip", "v4", "v6", "key"),
    [
        ("203.0.113.77", 32, 64, "203.0.113.77"),
        ("203.0.113.77", 24, 64, "203.0.113.0/24"),
        ("::ffff:203.0.113.77", 24, 64, "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6"),
        ("not-an-ip", 32, 64, "not-an-ip"),
    ],
)
def test_clients_are_keyed_by_their_network(ip: str, v4: int, v6: int, key: str) -> None:
    assert client_network(ip, ipv4_prefix=v4, ipv6_prefix=v6) == key
