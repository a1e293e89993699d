"""client_ip: X-Forwarded-For believed only as far as our own proxies wrote it."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.access.client_ip import TrustedProxyError, client_ip, trusted_networks

PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48")


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip("89.160.20.130", "1.2.3.4", ()) == "89.160.20.130"


def test_a_spoofed_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_ip("89.160.20.130", "175.16.199.1", PROXIES) == "89.160.20.130"


def test_the_entry_our_proxy_appended_is_the_client() -> None:
    assert client_ip("10.0.0.5", "89.160.20.130", PROXIES) == "89.160.20.130"


def test_entries_left_of_the_first_untrusted_address_are_not_believed() -> None:
    # The viewer sent "175.16.199.1" themselves; our proxy appended their real address.
    assert client_ip("10.0.0.5", "175.16.199.1, 89.160.20.130", PROXIES) == "89.160.20.130"


def test_a_chain_of_trusted_proxies_is_walked_right_to_left() -> None:
    chain = "175.16.199.1, 89.160.20.130, 10.1.1.1, 2001:db8:ffff::7"
    assert client_ip("10.0.0.5", chain, PROXIES) == "89.160.20.130"


def test_when_every_hop_is_ours_the_farthest_one_is_the_client() -> None:
    assert client_ip("10.0.0.5", "10.9.9.9, 10.1.1.1", PROXIES) == "10.9.9.9"


def test_a_trusted_peer_without_a_header_is_the_client() -> None:
    assert client_ip("10.0.0.5", None, PROXIES) == "10.0.0.5"
    assert client_ip("10.0.0.5", " , ", PROXIES) == "10.0.0.5"


def test_several_headers_joined_with_commas_form_one_list() -> None:
    joined = ",".join(["175.16.199.1", "89.160.20.130"])
    assert client_ip("10.0.0.5", joined, PROXIES) == "89.160.20.130"


@pytest.mark.parametrize(
    ("entry", "client"),
    [
        ("89.160.20.130:51234", "89.160.20.130"),
        ("[2001:218::1]", "2001:218::1"),
        ("[2001:218::1]:443", "2001:218::1"),
        ("::ffff:89.160.20.130", "89.160.20.130"),
        ("2001:0218:0000::0001", "2001:218::1"),
    ],
)
def test_entries_are_normalised(entry: str, client: str) -> None:
    assert client_ip("10.0.0.5", entry, PROXIES) == client


def test_an_ipv4_mapped_peer_matches_an_ipv4_proxy_range() -> None:
    assert client_ip("::ffff:10.0.0.5", "89.160.20.130", PROXIES) == "89.160.20.130"


def test_an_ipv4_mapped_proxy_range_matches_an_ipv4_peer() -> None:
    assert client_ip("10.0.0.5", "89.160.20.130", ["::ffff:10.0.0.0/104"]) == "89.160.20.130"


def test_garbage_in_client_position_is_returned_to_fail_as_bad_ip() -> None:
    # Falling back to the proxy's own address would let a broken header pass as the proxy.
    assert client_ip("10.0.0.5", "89.160.20.130, unknown", PROXIES) == "unknown"


def test_a_peer_that_is_not_an_address_is_returned_as_given() -> None:
    assert client_ip("testclient", "89.160.20.130", PROXIES) == "testclient"


def test_a_bad_trusted_proxy_setting_is_refused() -> None:
    with pytest.raises(TrustedProxyError) as raised:
        trusted_networks(["10.0.0.0/8", "proxy.internal"])
    assert raised.value.reason == "bad-trusted-proxy"


PROXY_V4 = ip_network(PROXIES[0])
PROXY_V6 = ip_network(PROXIES[1])


def _plain(address: IPv4Address | IPv6Address) -> bool:
    """Not IPv4-mapped: client_ip answers those in their IPv4 form."""
    return not isinstance(address, IPv6Address) or address.ipv4_mapped is None


def _not_a_proxy(address: IPv4Address | IPv6Address) -> bool:
    return _plain(address) and address not in PROXY_V4 and address not in PROXY_V6


addresses = st.ip_addresses().filter(_plain).map(str)
untrusted = st.ip_addresses().filter(_not_a_proxy).map(str)
trusted = st.one_of(
    st.integers(0, PROXY_V4.num_addresses - 1).map(lambda n: str(PROXY_V4[n])),
    st.integers(0, PROXY_V6.num_addresses - 1).map(lambda n: str(PROXY_V6[n])),
)
# What a client may write itself: addresses, or anything else without a comma.
spoofed = st.lists(
    st.one_of(addresses, st.text(alphabet=st.characters(exclude_characters=","), max_size=20)),
    max_size=5,
)


@given(peer=untrusted, header=st.one_of(st.none(), st.text(max_size=100)))
def test_an_untrusted_peer_is_always_the_client(peer: str, header: str | None) -> None:
    assert client_ip(peer, header, PROXIES) == str(ip_address(peer))


@given(peer=trusted, prefix=spoofed, client=untrusted, hops=st.lists(trusted, max_size=4))
def test_whatever_the_client_prepends_the_real_address_wins(
    peer: str, prefix: list[str], client: str, hops: list[str]
) -> None:
    header = ", ".join([*prefix, client, *hops])
    assert client_ip(peer, header, PROXIES) == client


@given(peer=trusted, entries=st.lists(st.one_of(addresses, trusted), max_size=6))
def test_the_answer_is_the_peer_or_one_of_the_entries(peer: str, entries: list[str]) -> None:
    answer = client_ip(peer, ", ".join(entries), PROXIES)
    assert answer in {str(ip_address(a)) for a in [peer, *entries]}
