"""Token buckets per client network: how the bridge tells one flooding client to slow down.

Pure logic: the clock comes in as an argument. A bucket holds up to `burst` tokens and
refills at `rate` per second; a request costing more than what is left is refused with
the time until it would fit. Buckets of idle clients are full, and a full bucket is the
same as no bucket, so they are forgotten first when too many clients are tracked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_network

from services.access.geo import GeoError, parse_ip


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per client key, refilled continuously; thread-safe."""

    def __init__(self, *, rate: float, burst: float, max_clients: int) -> None:
        if rate <= 0 or burst <= 0 or max_clients < 1:
            raise ValueError("rate, burst and max_clients must be positive")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, cost: float, now: float) -> float:
        """Spend cost tokens of client's bucket at time now (seconds, monotonic).

        Returns 0.0 when allowed (the tokens are spent), else the seconds until the
        request would fit (nothing is spent). A cost above `burst` is charged as `burst`:
        the largest request a client may send must still get through an idle bucket.
        """
        cost = min(cost, self.burst)
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= self.max_clients:
                    self._forget(now)
                bucket = self._buckets[client] = _Bucket(self.burst, now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Drop every bucket that has refilled; if none has, the least recently created."""
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_clients:
            # Insertion order: the oldest bucket goes. Its client starts again with a full
            # bucket, which errs on letting a real player through.
            del self._buckets[next(iter(self._buckets))]


def client_network(ip: str, *, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """The rate-limit key of an address: its network at the configured prefix length.

    An address that does not parse is its own key (it was refused elsewhere anyway).
    """
    try:
        address = parse_ip(ip)
    except GeoError:
        return ip
    prefix = ipv4_prefix if isinstance(address, IPv4Address) else ipv6_prefix
    if isinstance(address, IPv4Address) and prefix == 32:
        return str(address)
    if isinstance(address, IPv6Address) and prefix == 128:
        return str(address)
    return str(ip_network(f"{address}/{prefix}", strict=False))
