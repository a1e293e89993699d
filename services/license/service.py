"""The license service's decisions apart from REST and gRPC: checks, keys, events.

Every request runs the same checks, in this order, and stops at the first refusal:

1. the token: signature, kid, expiry, issuer, audience (401, the auth service's reasons);
2. the client address resolves (400 `bad-ip`);
3. the revocation list (403 `token-revoked`, `session-revoked`, `device-revoked`,
   `viewer-revoked`);
4. the token entitles the content (403 `not-entitled`);
5. the geo/IP/device policy with the token's IP binding (403 with the policy's reason;
   404 `unknown-content` for content the policy book does not list when it says so);
6. the keys: only periods of the window (`window.py`), else 404 `unknown-key-id` /
   `unknown-period`.

What is confirmed before the keys leave, and why:

- a GRANTED `LicenseIssued` is in `drm.licenses` (acks=all) before the answer: the
  license log is the audit trail of who was handed which keys, and a key that left
  without its record would be a hole in the tamper-evident log. A request whose record
  cannot be stored gets 503 and no keys (the record may still land later: the log may
  over-report a grant, never under-report one).
- `TokenUsed` (every use of a token with a valid signature) and REFUSED `LicenseIssued`
  records are sent without waiting (batched for up to 50 ms): the theft detector is a
  signal, and a refusal hands out nothing; their failures are counted in `/metrics`,
  not answered to the viewer.
- A token that fails verification writes nothing to Kafka (only metrics): it names no
  one we can vouch for, and logging it would let anyone append to the permanent log at
  the rate they can send garbage.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.registry import Collector

from services.access.geo import GeoError, GeoFacts
from services.access.policy import AccessRequest, PolicyBook, decide_access
from services.auth.errors import TokenRejected
from services.auth.issuance import token_entitles
from services.auth.service import Locator, RevocationCheck, identity_of
from services.auth.tokens import PlaybackClaims
from services.keys.errors import KeyHierarchyError
from services.keys.keystore import ContentKey
from services.keys.schedule import KeyPeriod
from services.license.clearkey import b64url
from services.license.errors import LicenseError, Refusal
from services.license.events import STORE_TIMEOUT_S, LicenseEvents
from services.license.window import LATE_GRACE_S, KeyWindow, clearkey_periods, key_window
from streams.errors import DeliveryFailed, ProducerBackpressure
from streams.events import LicenseDecision, LicenseIssued, TokenUsed, UseDecision

LICENSES_TOPIC = "drm.licenses"
TOKENS_USED_TOPIC = "auth.tokens-used"
# Client addresses resolved recently. A player comes back from the same address for
# every key period, and resolving builds geoip2 records (a sixth of a license's CPU in
# profiles); the databases do not change while the process runs.
MAX_CACHED_PLACES = 50_000


@dataclass(frozen=True, slots=True)
class Edge:
    """Which door a request came through: `protocol` in LicenseIssued, `service` in TokenUsed."""

    protocol: str
    service: str


CLEARKEY_REST = Edge("clearkey-rest", "license-rest")
HLS_KEY_REST = Edge("hls-key", "license-keys")
CLEARKEY_GRPC = Edge("clearkey-grpc", "license-grpc")
CONTENT_KEY_GRPC = Edge("content-key-grpc", "license-grpc")


class TokenCheck(Protocol):
    """Playback token verification (`tokens.PlaybackTokens`)."""

    def verify(self, token: str | None, *, now: float) -> PlaybackClaims: ...


class ContentKeys(Protocol):
    """A region's content keys (`services.keys.keystore.KeyStore`, or `EpochKeys`)."""

    def period_at(self, t_ms: int) -> KeyPeriod: ...

    def content_key(self, content_id: str, period: int) -> ContentKey: ...


@dataclass(frozen=True, slots=True)
class LicenseRequest:
    """Who asks, from where, through which edge. `content_id` None: the token's content."""

    token: str | None
    ip: str
    edge: Edge
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """An answer with keys whose `LicenseIssued` record is being written.

    The keys are only reachable through the two waits below, so no edge can send them
    before Kafka holds the record.
    """

    license_id: str
    _keys: tuple[ContentKey, ...]
    stored: Future[None]
    _decided_at: float = 0.0  # time.perf_counter() when the record went to Kafka
    _metrics: LicenseMetrics | None = None

    def keys_once_stored(self, timeout: float = STORE_TIMEOUT_S) -> tuple[ContentKey, ...]:
        """Block until the record is stored; LicenseError `delivery-failed` otherwise."""
        try:
            self.stored.result(timeout)
        except FutureTimeout as exc:
            raise _not_stored(f"not acknowledged within {timeout:g} s") from exc
        except DeliveryFailed as exc:
            raise _not_stored(str(exc)) from exc
        return self._released()

    def _released(self) -> tuple[ContentKey, ...]:
        if self._metrics is not None:
            self._metrics.store_seconds.observe(time.perf_counter() - self._decided_at)
        return self._keys

    async def keys_when_stored(self, timeout: float = STORE_TIMEOUT_S) -> tuple[ContentKey, ...]:
        """`keys_once_stored` for an event loop: awaits instead of blocking it."""
        try:
            # asyncio.timeout, not wait_for: no extra task per license.
            async with asyncio.timeout(timeout):
                await _arrivals(asyncio.get_running_loop()).watch(self.stored)
        except TimeoutError as exc:
            raise _not_stored(f"not acknowledged within {timeout:g} s") from exc
        except DeliveryFailed as exc:
            raise _not_stored(str(exc)) from exc
        return self._released()


class _Arrivals:
    """Confirmations of stored records, handed to one event loop in batches.

    Kafka's confirmations complete their futures on the producer's callback thread.
    `asyncio.wrap_future` wakes the loop once per future (a write to its self-pipe, and
    an extra turn of the loop each); here every confirmation that comes while a wake-up
    is pending rides on it, so a busy loop is woken once for all of them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._arrived: list[tuple[asyncio.Future[None], Future[None]]] = []

    def watch(self, stored: Future[None]) -> asyncio.Future[None]:
        """A future of this loop that completes as `stored` does."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        stored.add_done_callback(functools.partial(self._arrive, waiter))
        return waiter

    def _arrive(self, waiter: asyncio.Future[None], stored: Future[None]) -> None:
        with self._lock:
            self._arrived.append((waiter, stored))
            first = len(self._arrived) == 1
        if first and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            arrived, self._arrived = self._arrived, []
        for waiter, stored in arrived:
            if waiter.done():  # its request timed out meanwhile
                continue
            failure = stored.exception()
            if failure is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(failure)


_LOOP_ARRIVALS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Arrivals] = (
    weakref.WeakKeyDictionary()
)


def _arrivals(loop: asyncio.AbstractEventLoop) -> _Arrivals:
    arrivals = _LOOP_ARRIVALS.get(loop)
    if arrivals is None:
        arrivals = _LOOP_ARRIVALS[loop] = _Arrivals(loop)
    return arrivals


class _RandomIds:
    """Random (version 4) UUIDs as text, from one `os.urandom` call per `batch` of them
    (`uuid.uuid4` makes a system call for each, and a license takes three). Thread-safe:
    gRPC handler threads and the event loop share one service."""

    def __init__(self, batch: int = 256) -> None:
        self._batch = batch
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = os.urandom(16 * self._batch), 0
            raw = self._pool[self._at : self._at + 16]
            self._at += 16
        return str(uuid.UUID(bytes=raw, version=4))


def _not_stored(why: str) -> LicenseError:
    return LicenseError(
        Refusal.UNAVAILABLE,
        "delivery-failed",
        f"the license record is not stored, so no keys: {why}",
        retry_after=1.0,
    )


class LicenseMetrics:
    """Decisions by protocol, outcome and reason; registered on the edge's registry."""

    def __init__(self) -> None:
        # Not registered anywhere yet: the edge adds these to the registry it serves.
        self.decisions = Counter(
            "liveward_license_decisions",
            "License requests answered, by protocol, decision and reason",
            ["protocol", "decision", "reason"],
            registry=None,
        )
        # Where a grant's time goes: the checks, then Kafka taking the license record.
        self.decision_seconds = Histogram(
            "liveward_license_decision_seconds",
            "From the start of the checks to a grant's decision",
            registry=None,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
        )
        self.store_seconds = Histogram(
            "liveward_license_store_seconds",
            "From a grant's decision to Kafka confirming its license record",
            registry=None,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self._series: dict[tuple[str, LicenseDecision, str], Counter] = {}

    def collectors(self) -> tuple[Collector, ...]:
        return (self.decisions, self.decision_seconds, self.store_seconds)

    def decided(self, protocol: str, decision: LicenseDecision, reason: str) -> None:
        # The series of each (protocol, decision, reason) looked up once: `labels()` takes
        # a lock and builds its key on every call. Reasons are the service's own codes.
        series = self._series.get((protocol, decision, reason))
        if series is None:
            series = self.decisions.labels(protocol, decision.value, reason)
            self._series[protocol, decision, reason] = series
        series.inc()


class LicenseService:
    """ClearKey licenses and single period keys behind the checks in the module docstring."""

    def __init__(
        self,
        *,
        region: str,
        tokens: TokenCheck,
        revocations: RevocationCheck,
        keys: ContentKeys,
        geo: Locator,
        policies: PolicyBook,
        events: LicenseEvents,
        ready: Callable[[], bool] = lambda: True,
        late_grace_s: float = LATE_GRACE_S,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
        metrics: LicenseMetrics | None = None,
    ) -> None:
        self._region = region
        self._tokens = tokens
        self._revocations = revocations
        self._keys = keys
        self._geo = geo
        self._policies = policies
        self._events = events
        self._ready = ready
        self._late_grace_ms = round(late_grace_s * 1000)
        self._clock = clock
        self._timer = timer
        self.metrics = metrics or LicenseMetrics()
        self._places: dict[str, GeoFacts] = {}
        self._new_id = _RandomIds()

    def ready(self) -> bool:
        return self._ready() and self._revocations.ready()

    def clearkey(self, request: LicenseRequest, kids: Sequence[bytes]) -> Grant:
        """The ClearKey license for the key ids a CDM asked for.

        It holds the current and the next period's keys of the content, plus any late
        period the CDM named (see `window`); a key id that is none of those refuses the
        whole request (404 `unknown-key-id`) rather than answering a license the CDM
        would fail on later without a reason.
        """

        def choose(window: KeyWindow, content_id: str) -> tuple[ContentKey, ...]:
            in_window = self._window_keys(window, content_id)
            by_kid = {key.key_id_bytes: key for key in in_window.values()}
            asked = []
            for kid in kids:
                key = by_kid.get(kid)
                if key is None:
                    raise LicenseError(
                        Refusal.NOT_FOUND,
                        "unknown-key-id",
                        f"key id {b64url(kid)} is no key of {content_id} a license may hold now",
                    )
                asked.append(key.period)
            return tuple(in_window[p] for p in clearkey_periods(window, tuple(asked)))

        return self._answer(request, choose)

    def period_key(self, request: LicenseRequest, period: int) -> Grant:
        """The key of one period of request.content_id (HLS AES-128 `EXT-X-KEY`); 404
        `unknown-period` outside the window."""

        def choose(window: KeyWindow, content_id: str) -> tuple[ContentKey, ...]:
            if not window.allows(period):
                raise LicenseError(
                    Refusal.NOT_FOUND,
                    "unknown-period",
                    f"period {period} is not one a key is handed out for now "
                    f"({window.oldest}..{window.newest})",
                )
            return (self._content_key(content_id, period),)

        return self._answer(request, choose)

    # -- the checks ------------------------------------------------------------------

    def _answer(
        self, request: LicenseRequest, choose: Callable[[KeyWindow, str], tuple[ContentKey, ...]]
    ) -> Grant:
        started = self._timer()
        protocol = request.edge.protocol
        if not self.ready():
            raise LicenseError(
                Refusal.UNAVAILABLE,
                "not-ready",
                "still reading keys and revocations",
                retry_after=1.0,
            )
        now = self._clock()
        try:
            claims = self._tokens.verify(request.token, now=now)
        except TokenRejected as exc:
            self.metrics.decided(protocol, LicenseDecision.REFUSED, exc.reason)
            raise LicenseError(Refusal.UNAUTHENTICATED, exc.reason, str(exc)) from exc
        content_id = request.content_id or claims.content_id
        facts: GeoFacts | None = None
        try:
            facts = self._locate(request.ip)
            reason = self._check_access(claims, content_id, facts)
            keys = choose(self._window(round(now * 1000)), content_id)
        except LicenseError as exc:
            if facts is not None:
                self._record_use(
                    request, claims, content_id, facts, allowed=False, reason=exc.reason
                )
            self._events.signal(
                LICENSES_TOPIC,
                self._license_event(
                    request, claims, content_id, (), LicenseDecision.REFUSED, exc.reason, started
                ),
            )
            self.metrics.decided(protocol, LicenseDecision.REFUSED, exc.reason)
            raise
        self._record_use(request, claims, content_id, facts, allowed=True, reason=reason)
        event = self._license_event(
            request, claims, content_id, keys, LicenseDecision.GRANTED, reason, started
        )
        try:
            stored = self._events.store(LICENSES_TOPIC, event)
        except ProducerBackpressure as exc:
            raise LicenseError(
                Refusal.UNAVAILABLE, "backpressure", str(exc), retry_after=exc.retry_after
            ) from exc
        except DeliveryFailed as exc:
            raise _not_stored(str(exc)) from exc
        self.metrics.decided(protocol, LicenseDecision.GRANTED, reason)
        self.metrics.decision_seconds.observe(event.latency_us / 1e6)
        return Grant(event.license_id, keys, stored, time.perf_counter(), self.metrics)

    def _locate(self, ip: str) -> GeoFacts:
        facts = self._places.get(ip)
        if facts is not None:
            return facts
        try:
            facts = self._geo.resolve(ip)
        except GeoError as exc:
            raise LicenseError(
                Refusal.BAD_REQUEST, "bad-ip", f"client address {ip!r} is not an IP address"
            ) from exc
        if len(self._places) >= MAX_CACHED_PLACES:
            self._places = {}
        self._places[ip] = facts
        return facts

    def _check_access(self, claims: PlaybackClaims, content_id: str, facts: GeoFacts) -> str:
        """The policy's reason when the use is allowed; LicenseError otherwise."""
        revoked = self._revocations.check(identity_of(claims))
        if revoked is not None:
            raise LicenseError(Refusal.FORBIDDEN, revoked, f"the token is revoked ({revoked})")
        if not token_entitles(claims, content_id):
            raise LicenseError(
                Refusal.FORBIDDEN, "not-entitled", f"the token does not cover {content_id}"
            )
        decision = decide_access(
            AccessRequest(
                content_id=content_id,
                device_class=claims.device.device_class,
                facts=facts,
                home_country=claims.entitlements.home_country,
                token_network=claims.geo.network,
                token_asn=claims.geo.asn,
                token_country=claims.geo.country,
                max_streams=claims.entitlements.max_streams,
            ),
            self._policies.for_content(content_id),
        )
        if not decision.allowed:
            refusal = (
                Refusal.NOT_FOUND if decision.reason == "unknown-content" else Refusal.FORBIDDEN
            )
            raise LicenseError(refusal, decision.reason, decision.detail)
        return decision.reason

    # -- keys ------------------------------------------------------------------------

    def _window(self, now_ms: int) -> KeyWindow:
        period = self._period_at(now_ms)
        late = period.number
        # The oldest period inside the grace that has a key. When the first epoch began
        # inside the grace nothing before it exists, but its own periods before the
        # current one do (players behind the live edge still need them).
        length = period.end_ms - period.start_ms
        for t_ms in range(max(0, now_ms - self._late_grace_ms), period.start_ms, length):
            try:
                late = self._keys.period_at(t_ms).number
            except KeyHierarchyError:
                continue
            break
        return key_window(period.number, late)

    def _period_at(self, t_ms: int) -> KeyPeriod:
        try:
            return self._keys.period_at(t_ms)
        except KeyHierarchyError as exc:
            raise _key_error(exc) from exc

    def _content_key(self, content_id: str, period: int) -> ContentKey:
        try:
            return self._keys.content_key(content_id, period)
        except KeyHierarchyError as exc:
            raise _key_error(exc) from exc

    def _window_keys(self, window: KeyWindow, content_id: str) -> dict[int, ContentKey]:
        """period -> key for every period of the window this region holds a key for.

        Late periods whose epoch is gone or unusable here are skipped (they are only a
        courtesy); the current and the next must be there.
        """
        found: dict[int, ContentKey] = {}
        for period in window.periods():
            try:
                found[period] = self._keys.content_key(content_id, period)
            except KeyHierarchyError as exc:
                late = period < window.current
                if late and exc.reason in ("no-epoch", "epoch-unavailable"):
                    continue
                raise _key_error(exc) from exc
        return found

    # -- events ----------------------------------------------------------------------

    def _record_use(
        self,
        request: LicenseRequest,
        claims: PlaybackClaims,
        content_id: str,
        facts: GeoFacts,
        *,
        allowed: bool,
        reason: str,
    ) -> None:
        self._events.signal(
            TOKENS_USED_TOPIC,
            TokenUsed(
                event_id=self._new_id(),
                occurred_at=round(self._clock() * 1000),
                region=self._region,
                token_id=claims.token_id,
                session_id=claims.session_id,
                viewer_ref=claims.viewer_ref,
                device_ref=claims.device_ref,
                content_id=content_id,
                service=request.edge.service,
                country=facts.country or "",
                ip_prefix=facts.network,
                asn=facts.asn or 0,
                decision=UseDecision.ALLOWED if allowed else UseDecision.DENIED,
                reason=reason,
            ),
        )

    def _license_event(
        self,
        request: LicenseRequest,
        claims: PlaybackClaims,
        content_id: str,
        keys: tuple[ContentKey, ...],
        decision: LicenseDecision,
        reason: str,
        started: float,
    ) -> LicenseIssued:
        # latency_us: from the start of the checks to the decision; the wait for the
        # record itself cannot be in the record (bench measures the whole answer).
        return LicenseIssued(
            event_id=self._new_id(),
            occurred_at=round(self._clock() * 1000),
            region=self._region,
            license_id=self._new_id(),
            viewer_ref=claims.viewer_ref,
            session_id=claims.session_id,
            content_id=content_id,
            key_ids=tuple(key.key_id for key in keys),
            protocol=request.edge.protocol,
            decision=decision,
            reason=reason,
            latency_us=max(0, round((self._timer() - started) * 1_000_000)),
        )


def _key_error(exc: KeyHierarchyError) -> LicenseError:
    """A key hierarchy failure as a refusal: bad input is the caller's, the rest ours."""
    if exc.reason in ("bad-period", "bad-content-id"):
        return LicenseError(Refusal.BAD_REQUEST, exc.reason, str(exc))
    return LicenseError(Refusal.UNAVAILABLE, exc.reason, str(exc), retry_after=1.0)
