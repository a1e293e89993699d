"""License speed: latency at fixed offered rates and the most the service answers, next to
the cost of the crypto alone (HKDF derivations + one token verification) measured in the
same run.

The service runs as `liveward serve license` next to `liveward serve auth` (the JWKS) on
the live stack; every grant waits for its `LicenseIssued` record (acks=all) before the
answer, as in production. Two token mixes:

- *warm*: a pool of players, each presenting its own token again (as a player does for
  every key period of its token's life): the signature is verified once per token;
- *cold*: every request a token never seen before: a full Ed25519 verification each time.

Tokens are signed in the bench with the auth service's current signing key (the same
claims it would issue), so thousands of distinct tokens cost no HTTP round trips.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import orjson
import uvloop
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.load import HttpPool, LoadFigures, Send, closed_loop, open_loop
from liveward.settings import Settings
from services.access.geo import GeoResolver
from services.auth.server import keyring_path
from services.auth.signing_keys import KeyringFile
from services.auth.tokens import (
    DeviceBinding,
    Entitlements,
    GeoBinding,
    PlaybackClaims,
    TokenVerifier,
    sign_token,
)
from services.heap import settle_heap
from services.keys.derivation import EpochSecret
from services.keys.keystore import KeyStore
from services.keys.kms import local_keks_of_every_region
from services.license.clearkey import b64url
from streams.meta import now_ms
from streams.producer import EventProducer

VIEWER_IP = "2.125.160.218"  # England in the demo geo databases
CONTENT = "bench-live"
CATCH_UP_S = 30.0
CLEARKEY = 'route="/v1/license/clearkey"'


@dataclass(frozen=True, slots=True)
class CryptoBaseline:
    """The crypto one license needs, alone, in this process: µs per operation."""

    derive_us: float  # one period's content key and key id (two HKDF-Expand)
    verify_us: float  # one token, TokenVerifier.verify (Ed25519 + claims)
    raw_verify_us: float  # the bare Ed25519 verification of the same token

    @property
    def license_us(self) -> float:
        """A cold license: two periods derived and one token verified."""
        return 2 * self.derive_us + self.verify_us

    @property
    def licenses_per_s(self) -> float:
        return 1e6 / self.license_us


@dataclass(frozen=True, slots=True)
class LicenseRun:
    """One load run: the mix, the figures, and what the license process saw of it."""

    mix: str
    figures: LoadFigures
    server_cpu_us: float  # license process CPU time / requests
    # Per SERVER_HISTOGRAMS name: the bucket bound its own histogram puts the p99 under.
    server_p99_ms: dict[str, float | None]
    # The machine's 1-minute load average after the run: the cores are shared with
    # whatever else runs, and a busy machine shows in the tail first.
    load_1m: float


@dataclass(slots=True)
class LicenseBench:
    crypto: CryptoBaseline
    runs: list[LicenseRun] = field(default_factory=list)
    saturated: list[LicenseRun] = field(default_factory=list)
    concurrency: int = 0


def _per_op_us(count: int, action: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for index in range(count):
        action(index)
    return (time.perf_counter() - started) / count * 1e6


def measure_crypto(count: int) -> CryptoBaseline:
    """HKDF derivations and token verification alone, `count` of each."""
    secret = EpochSecret.from_master("bench-epoch", os.urandom(32))
    signer = Ed25519PrivateKey.generate()
    public = signer.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = time.time()
    claims = _claims(now, "bench-issuer", "bench-audience", GeoBinding("GB", "2.125.160.0/24", 1))
    token = sign_token(claims, "bench-kid", signer)
    signing_input, _, _ = token.rpartition(".")
    signature = signer.sign(signing_input.encode())
    verifier = TokenVerifier({"bench-kid": raw}, issuer="bench-issuer", audience="bench-audience")
    return CryptoBaseline(
        derive_us=_per_op_us(
            count, lambda i: (secret.content_key(CONTENT, i), secret.key_id(CONTENT, i))
        ),
        verify_us=_per_op_us(count, lambda _: verifier.verify(token, now=now)),
        raw_verify_us=_per_op_us(count, lambda _: public.verify(signature, signing_input.encode())),
    )


def _claims(now: float, issuer: str, audience: str, geo: GeoBinding) -> PlaybackClaims:
    viewer = uuid.uuid4().hex
    return PlaybackClaims(
        issuer=issuer,
        audience=audience,
        viewer_id=f"bench-{viewer[:12]}",
        issued_at=now,
        not_before=int(now),
        expires_at=int(now) + 300,
        token_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        content_id=CONTENT,
        entitlements=Entitlements(packages=(), max_streams=2, home_country="GB"),
        geo=geo,
        device=DeviceBinding(device_id=f"device-{viewer[:12]}", device_class="web"),
        viewer_ref=viewer * 2,
        device_ref=viewer[::-1] * 2,
        session_version=0,
    )


Histograms = dict[str, dict[float, float]]
# What the license process measures of itself: the whole route, the checks, the Kafka wait.
SERVER_HISTOGRAMS = {
    "route": ("liveward_http_request_seconds_bucket", CLEARKEY),
    "decision": ("liveward_license_decision_seconds_bucket", ""),
    "kafka": ("liveward_license_store_seconds_bucket", ""),
}


def _server_histograms(address: tuple[str, int]) -> Histograms:
    """Cumulative bucket counts (by upper bound, s) of SERVER_HISTOGRAMS, scraped now."""
    text = httpx.get(f"http://{address[0]}:{address[1]}/metrics", timeout=5).text
    found: Histograms = {name: {} for name in SERVER_HISTOGRAMS}
    for line in text.splitlines():
        for name, (metric, label) in SERVER_HISTOGRAMS.items():
            if line.startswith(metric + "{") and label in line:
                bound = line.split('le="', 1)[1].split('"', 1)[0]
                found[name][float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


def server_p99_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The smallest bucket bound (ms) holding 99% of the requests between two scrapes."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return None
    for bound in sorted(counts):
        if counts[bound] >= 0.99 * total:
            return bound * 1000
    return None


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _epoch_keys(settings: Settings) -> Iterator[KeyStore]:
    """This region's keys, with an epoch in force (created when there is none)."""
    from services.keys.rotation import Rotator

    keys = KeyStore(settings)
    keys.start(CATCH_UP_S)
    try:
        if not keys.wait_ready(CATCH_UP_S):
            raise RuntimeError("keys.epochs was not read to its end")
        producer = EventProducer(settings)
        try:
            Rotator(keys, local_keks_of_every_region(settings), producer).ensure_epoch()
        finally:
            producer.close()
        yield keys
    finally:
        keys.close()


class LicenseDriver:
    """Builds ClearKey requests for the current period and sends them over one pool."""

    def __init__(self, settings: Settings, url_host: str, url_port: int, keys: KeyStore) -> None:
        self._keys = keys
        self._host = f"{url_host}:{url_port}".encode()
        self._pool_address = (url_host, url_port)
        ring = KeyringFile(keyring_path(settings)).load()
        signing = ring.signing_key(time.time())
        if signing is None:
            raise RuntimeError("the auth keyring has no signing key (is auth running?)")
        self._kid, self._signer = signing.kid, signing.signer()
        with GeoResolver.from_settings(settings.auth) as geo:
            facts = geo.resolve(VIEWER_IP)
        self._geo = GeoBinding(facts.country, facts.network, facts.asn)
        self._issuer, self._audience = settings.auth.issuer, settings.auth.audience
        self._bodies: dict[int, bytes] = {}

    def tokens(self, count: int) -> list[bytes]:
        now = time.time()
        return [
            sign_token(
                _claims(now, self._issuer, self._audience, self._geo), self._kid, self._signer
            ).encode()
            for _ in range(count)
        ]

    def _body(self) -> bytes:
        period = self._keys.period_at(now_ms()).number
        body = self._bodies.get(period)
        if body is None:
            kid = self._keys.content_key(CONTENT, period).key_id_bytes
            body = orjson.dumps({"kids": [b64url(kid)], "type": "temporary"})
            self._bodies = {period: body}
        return body

    def request(self, token: bytes) -> bytes:
        body = self._body()
        return b"".join(
            (
                b"POST /v1/license/clearkey HTTP/1.1\r\nHost: ",
                self._host,
                b"\r\nAuthorization: Bearer ",
                token,
                b"\r\nX-Forwarded-For: " + VIEWER_IP.encode(),
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )

    def pool(self) -> HttpPool:
        return HttpPool(*self._pool_address)

    def server_histograms(self) -> Histograms:
        return _server_histograms(self._pool_address)


def _sender(driver: LicenseDriver, pool: HttpPool, tokens: list[bytes]) -> Send:
    async def send(index: int) -> str | None:
        answer = await pool.request(driver.request(tokens[index % len(tokens)]))
        if answer.status == 200:
            return None
        try:
            reason = orjson.loads(answer.body).get("error", "")
        except orjson.JSONDecodeError:
            reason = ""
        return f"{answer.status} {reason}".strip()

    return send


# How long the highest rate runs before anything is measured: a fresh broker's JIT still
# compiles (its compiler threads taking the two cores from everyone) well after 10 s; with
# 10 s, the first measured run's p99 at 1k/s was 7 to 26 ms, with 30 s 3.5 to 9.3 ms.
WARM_UP_S = 30.0


def run_license_bench(
    settings: Settings,
    license_url: tuple[str, int],
    license_pid: int,
    *,
    rates: list[int],
    seconds: float,
    players: int,
    concurrency: int,
    crypto_count: int,
) -> LicenseBench:
    """Measure the crypto baseline, then offer each rate (warm and cold), then saturate."""
    bench = LicenseBench(measure_crypto(crypto_count), concurrency=concurrency)
    with _epoch_keys(settings) as keys:
        driver = LicenseDriver(settings, *license_url, keys)

        async def measure() -> None:
            warm = driver.tokens(players)
            # Warm up: connections, the producer, every warm token verified once.
            warm_up = await open_loop(
                _sender(driver, driver.pool(), warm),
                rate_per_s=500,
                seconds=max(1.0, players / 500),
            )
            if warm_up.errors:
                raise RuntimeError(f"the license service refused the warm-up: {warm_up.failures}")
            # Then the highest rate for a while: a broker just started compiles its hot
            # paths (JIT) in its first half-minute under load, and that is not the steady
            # state a long-running service lives in (measured: p99 up to 90 ms without).
            await open_loop(
                _sender(driver, driver.pool(), warm), rate_per_s=max(rates), seconds=WARM_UP_S
            )
            for mix in ("warm", "cold"):
                for rate in rates:
                    tokens = warm if mix == "warm" else driver.tokens(round(rate * seconds))
                    pool = driver.pool()
                    before, buckets = _cpu_s(license_pid), driver.server_histograms()
                    # The driver's own collector pauses would count as license latency.
                    settle_heap()
                    figures = await open_loop(
                        _sender(driver, pool, tokens),
                        rate_per_s=rate,
                        seconds=seconds,
                    )
                    cpu = _cpu_s(license_pid) - before
                    bench.runs.append(_run(mix, figures, cpu, buckets, driver.server_histograms()))
                    await pool.close()
            for mix in ("warm", "cold"):
                # Enough fresh tokens for the most the service could answer in `seconds`.
                count = round(bench.crypto.licenses_per_s * seconds)
                tokens = warm if mix == "warm" else driver.tokens(count)
                pool = driver.pool()
                before, buckets = _cpu_s(license_pid), driver.server_histograms()
                settle_heap()
                figures = await closed_loop(
                    _sender(driver, pool, tokens),
                    concurrency=concurrency,
                    seconds=seconds,
                )
                cpu = _cpu_s(license_pid) - before
                bench.saturated.append(_run(mix, figures, cpu, buckets, driver.server_histograms()))
                await pool.close()

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(measure())
    return bench


def _run(
    mix: str, figures: LoadFigures, cpu_s: float, before: Histograms, after: Histograms
) -> LicenseRun:
    p99 = {name: server_p99_ms(before[name], after[name]) for name in SERVER_HISTOGRAMS}
    cpu_us = cpu_s / max(1, figures.requests) * 1e6
    return LicenseRun(mix, figures, cpu_us, p99, os.getloadavg()[0])
