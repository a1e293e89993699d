"""Which address a request really came from, honouring X-Forwarded-For only from trusted proxies.

Anyone can send an `X-Forwarded-For` header, so only the entries our own proxies appended
are believed. Walking the header right to left, each entry appended by a trusted proxy is
skipped; the first address that is not a trusted proxy is the client. Entries to its left
were written by the client (or its proxies) and prove nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network

from services.access import AccessError
from services.access.geo import GeoError, IPAddress, parse_ip

TrustedNetwork = IPv4Network | IPv6Network

# Proxies write "1.2.3.4", "1.2.3.4:5678", "[2001:db8::1]" or "[2001:db8::1]:443".
_BRACKETED = re.compile(r"^\[(?P<host>[^\]]+)\](?::\d+)?$")
_IPV4_WITH_PORT = re.compile(r"^(?P<host>\d{1,3}(?:\.\d{1,3}){3}):\d+$")


class TrustedProxyError(AccessError):
    """A trusted-proxy entry in the settings that is not an address or a CIDR."""

    reason = "bad-trusted-proxy"


@lru_cache(maxsize=16)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple[TrustedNetwork, ...]:
    networks: list[TrustedNetwork] = []
    for entry in trusted_proxies:
        try:
            network = ip_network(entry.strip(), strict=False)
        except ValueError as exc:
            raise TrustedProxyError(f"trusted proxy {entry!r} is not an address or CIDR") from exc
        # A mapped IPv6 network and its IPv4 form name the same proxies.
        if isinstance(network, IPv6Network) and network.network_address.ipv4_mapped is not None:
            mapped = network.network_address.ipv4_mapped
            network = IPv4Network((mapped, network.prefixlen - 96))
        networks.append(network)
    return tuple(networks)


def trusted_networks(trusted_proxies: Sequence[str]) -> tuple[TrustedNetwork, ...]:
    """The trusted proxies as networks; TrustedProxyError for a bad entry.

    Call it once at start-up to fail fast on a bad setting; `client_ip` calls it too.
    """
    return _networks(tuple(trusted_proxies))


def _address(text: str) -> IPAddress | None:
    host = text.strip()
    match = _BRACKETED.match(host) or _IPV4_WITH_PORT.match(host)
    if match is not None:
        host = match["host"]
    try:
        return parse_ip(host)
    except GeoError:
        return None


def client_ip(peer: str, forwarded_for: str | None, trusted_proxies: Sequence[str]) -> str:
    """The client's address: `peer` itself unless `peer` is a trusted proxy.

    `peer` is the address of the TCP connection; `forwarded_for` every X-Forwarded-For
    header value joined with "," (several headers form one list, RFC 9110), or None.
    The result is normalised (IPv4-mapped IPv6 becomes IPv4). When the entry in client
    position is not an address, it is returned as written, so resolving it fails with
    reason "bad-ip" instead of falling back to a proxy's address. A peer that is not an
    address is returned as given, for the same reason.
    """
    networks = trusted_networks(trusted_proxies)

    def trusted(address: IPAddress) -> bool:
        return any(address in network for network in networks)

    peer_address = _address(peer)
    if peer_address is None:
        return peer.strip()
    if not trusted(peer_address) or not forwarded_for:
        return str(peer_address)
    entries = [entry.strip() for entry in forwarded_for.split(",")]
    entries = [entry for entry in entries if entry]
    client = str(peer_address)
    for entry in reversed(entries):
        address = _address(entry)
        if address is None:
            return entry
        client = str(address)
        if not trusted(address):
            return client
    # Every hop was one of our proxies: the farthest one is where the request started.
    return client
