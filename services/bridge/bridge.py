"""The telemetry bridge: one request in, its valid samples confirmed by Kafka, an answer out.

The order matters for privacy and for floods: the client address is resolved to coarse
geo and a rate-limit key, which is all that goes further (the address stays in this
process's memory, in a bounded cache); a flooding client is refused before its body is
parsed; raw viewer and session ids are replaced by epoch pseudonyms before anything
is encoded; and the answer is given only after Kafka confirmed every record holding an accepted
sample (a request's samples travel as one block record per partition).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from services.access.client_ip import client_ip
from services.access.geo import GeoError, GeoFacts
from services.bridge.epochs import EpochKeyStore, epoch_label
from services.bridge.errors import RateLimited, RequestRejected
from services.bridge.pseudonyms import EpochPseudonyms
from services.bridge.ratelimit import TokenBuckets, client_network
from services.bridge.records import ENTROPY_BYTES, BlockEncoder, Provenance
from services.bridge.requests import TelemetryRequest, read_request
from services.bridge.samples import Rejection, SampleWindow
from services.bridge.settings import BridgeSettings
from streams.meta import now_ms


class RecordLog(Protocol):
    """Where encoded records go; `EventProducer` is the real one.

    `send_counted` returns only once every record is confirmed, else raises
    DeliveryFailed or ProducerBackpressure.
    """

    def send_counted(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
        *,
        timeout: float = 30.0,
    ) -> int: ...


class GeoLookup(Protocol):
    def resolve(self, ip: str) -> GeoFacts: ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """What a request achieved: samples in Kafka, items refused, CMCD keys ignored."""

    accepted: int
    rejected: list[Rejection]
    ignored_keys: list[str]
    form: str

    def as_json(self) -> dict[str, object]:
        answer: dict[str, object] = {
            "accepted": self.accepted,
            "rejected": [r.as_json() for r in self.rejected],
        }
        if self.form != "json":
            answer["ignored_keys"] = self.ignored_keys
        return answer


# Addresses whose geo and rate-limit key are remembered (oldest forgotten first).
CLIENT_CACHE_SIZE = 50_000


class Client(NamedTuple):
    """What the bridge keeps of a client address: its bucket key and coarse geo."""

    network: str
    country: str | None
    subdivision: str | None
    address_ok: bool


class TelemetryBridge:
    """Validates, pseudonymises, geo-stamps and produces telemetry; see the module doc."""

    def __init__(
        self,
        *,
        region: str,
        settings: BridgeSettings,
        trusted_proxies: Sequence[str],
        keys: EpochKeyStore,
        encoder: BlockEncoder,
        log: RecordLog,
        geo: GeoLookup,
        clock_ms: Callable[[], int] = now_ms,
        monotonic: Callable[[], float] = time.monotonic,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.region = region
        self.settings = settings
        self._trusted = tuple(trusted_proxies)
        self._keys = keys
        self._encoder = encoder
        self._log = log
        self._geo = geo
        self._clock_ms = clock_ms
        self._monotonic = monotonic
        self._entropy = entropy
        self._buckets = TokenBuckets(
            rate=settings.rate_limit_samples_per_s,
            burst=settings.rate_limit_burst,
            max_clients=settings.rate_limit_clients,
        )
        self._pseudonyms: EpochPseudonyms | None = None
        self._pseudonyms_lock = threading.Lock()
        self._clients: dict[tuple[str, str | None], Client] = {}
        self._clients_lock = threading.Lock()

    def pseudonyms(self, received_ms: int) -> EpochPseudonyms:
        """The pseudonyms of the epoch received_ms falls in (its key from the store)."""
        label = epoch_label(received_ms, self.settings.pseudonym_epoch_s)
        epoch_key = self._keys.current(label, received_ms)
        current = self._pseudonyms
        if current is not None and current.epoch == epoch_key.epoch:
            return current
        with self._pseudonyms_lock:
            self._pseudonyms = EpochPseudonyms(epoch_key)
            return self._pseudonyms

    def _client(self, peer: str, forwarded_for: str | None) -> Client:
        """Who sent a request: rate-limit key and coarse geo, cached per (peer, header).

        Players send a sample every few seconds from the same address, and resolving it
        (three database lookups, address parsing) costs more than a small request.
        """
        cache_key = (peer, forwarded_for)
        known = self._clients.get(cache_key)
        if known is not None:
            return known
        address = client_ip(peer, forwarded_for, self._trusted)
        network = client_network(
            address,
            ipv4_prefix=self.settings.rate_limit_ipv4_prefix,
            ipv6_prefix=self.settings.rate_limit_ipv6_prefix,
        )
        try:
            facts = self._geo.resolve(address)
            client = Client(network, facts.country, facts.subdivision, address_ok=True)
        except GeoError:
            client = Client(network, None, None, address_ok=False)
        with self._clients_lock:
            if len(self._clients) >= CLIENT_CACHE_SIZE:
                del self._clients[next(iter(self._clients))]
            self._clients[cache_key] = client
        return client

    def _charge(self, network: str, cost: float) -> None:
        wait = self._buckets.take(network, cost, self._monotonic())
        if wait > 0:
            raise RateLimited(
                "this client sends more telemetry than the bridge accepts from one client",
                retry_after=wait,
            )

    def ingest(
        self, request: TelemetryRequest, *, peer: str, forwarded_for: str | None
    ) -> Accepted:
        """Handle one request; returns once every accepted sample is confirmed by Kafka.

        Raises RequestRejected (400/413/415; `bad-ip` for a client address that is not
        one), RateLimited (429) or the log's DeliveryFailed / ProducerBackpressure (503).
        """
        client = self._client(peer, forwarded_for)
        # Charged before parsing, so a flood of requests costs the bridge little.
        self._charge(client.network, self.settings.rate_limit_request_cost)
        received_ms = self._clock_ms()
        window = SampleWindow.around(
            received_ms,
            max_age_s=self.settings.max_sample_age_s,
            max_skew_s=self.settings.max_clock_skew_s,
        )
        read = read_request(
            request, received_ms=received_ms, window=window, max_samples=self.settings.max_samples
        )
        self._charge(client.network, len(read.samples) + len(read.rejected))
        if not read.samples:
            raise RequestRejected(
                "invalid-samples",
                f"all {len(read.rejected)} samples were refused",
                problems=[r.as_json() for r in read.rejected],
            )
        if not client.address_ok:
            raise RequestRejected("bad-ip", "the client address is not an IP address")
        # Only the coarse geo travels on: the address is not passed further.
        provenance = Provenance(self.region, received_ms, client.country, client.subdivision)
        records = self._encoder.encode_blocks(
            read.samples,
            provenance,
            self.pseudonyms(received_ms),
            self._entropy(ENTROPY_BYTES),
        )
        self._log.send_counted(self.settings.topic, records, timeout=self.settings.send_timeout_s)
        return Accepted(len(read.samples), read.rejected, read.ignored_keys, read.form)
