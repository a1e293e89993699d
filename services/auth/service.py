"""The auth service's operations apart from HTTP: subscribers, issue, renew, introspect, revoke.

It holds the I/O behind small interfaces (an event sink, the subscriber view, the
revocation check, geo and policy) and calls the pure decisions in `issuance` and
`tokens`. Every event it emits is confirmed by Kafka before the operation returns, so
an answer of "done" means the fact is in the log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from liveward.settings import Settings
from services.access.client_ip import client_ip
from services.access.geo import GeoError, GeoFacts
from services.access.policy import AccessDecision, AccessRequest, PolicyBook, decide_access
from services.access.revocation import TokenIdentity
from services.auth.errors import AccessRefused, AuthError, TokenRejected
from services.auth.issuance import (
    TokenTerms,
    build_claims,
    check_session_version,
    check_subscriber,
    renewed_claims,
    token_entitles,
)
from services.auth.pseudonyms import Pseudonyms
from services.auth.sessions import ActiveSessions, SessionRecord
from services.auth.signing_keys import SigningKeys
from services.auth.subscribers import SubscriberDirectory, validate_record
from services.auth.tokens import (
    CLOCK_SKEW_S,
    GeoBinding,
    PlaybackClaims,
    TokenVerifier,
    encrypt_token,
    encryption_key,
    sign_token,
)
from streams.codec import AvroEvent
from streams.events import (
    RevocationRequested,
    RevocationScope,
    SubscriberEntitlements,
    TokenIssued,
    TokenUsed,
    UseDecision,
)

SUBSCRIBERS_TOPIC = "subscribers.entitlements"
TOKENS_ISSUED_TOPIC = "auth.tokens-issued"
TOKENS_USED_TOPIC = "auth.tokens-used"
REVOCATIONS_TOPIC = "auth.revocations"
INTROSPECTION_SERVICE = "auth-introspect"
# An edge answers within seconds or not at all; Kafka's own 30 s would hold the client.
SEND_TIMEOUT_S = 5.0


class NotReady(AuthError):
    """The service has not caught up with the subscriber or revocation topics yet."""

    reason = "not-ready"


class BadAddress(AuthError):
    """The client address (given, or taken from the connection) is not an IP address."""

    reason = "bad-ip"


class EventSink(Protocol):
    """Where events go; `send` returns once the event is stored (EventProducer, or a list)."""

    def send(self, topic: str, event: AvroEvent, *, timeout: float = ...) -> object: ...


class InMemoryEventSink:
    """An EventSink that keeps what it is sent, in order (tests)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, AvroEvent]] = []

    def send(self, topic: str, event: AvroEvent, *, timeout: float = SEND_TIMEOUT_S) -> object:
        self.sent.append((topic, event))
        return None

    def of(self, event_type: type[Any]) -> list[Any]:
        return [event for _, event in self.sent if isinstance(event, event_type)]


class RevocationCheck(Protocol):
    """The revocation list as a service embeds it (services.access.revocation)."""

    def check(self, token: TokenIdentity) -> str | None: ...

    def ready(self) -> bool: ...


class Locator(Protocol):
    def resolve(self, ip: str) -> GeoFacts: ...


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as handed out, with what the answer and the event need."""

    token: str
    kid: str
    claims: PlaybackClaims


@dataclass(frozen=True, slots=True)
class Introspection:
    """The verdict on a token used for content: the claims, and the policy's decision."""

    claims: PlaybackClaims
    decision: AccessDecision


@dataclass(frozen=True, slots=True)
class Revocation:
    revocation_id: str
    covers_until_ms: int
    session_version: int | None  # the viewer's new one, for viewer-scope revocations


def identity_of(claims: PlaybackClaims) -> TokenIdentity:
    """What the revocation list can name in a token."""
    return TokenIdentity(
        token_id=claims.token_id,
        session_id=claims.session_id,
        viewer_ref=claims.viewer_ref,
        device_ref=claims.device_ref,
        issued_at_ms=claims.issued_at_ms,
    )


class AuthService:
    """Subscribers, playback tokens and revocations over Kafka, geo and the policy book."""

    def __init__(
        self,
        settings: Settings,
        *,
        keys: SigningKeys,
        subscribers: SubscriberDirectory,
        events: EventSink,
        revocations: RevocationCheck,
        geo: Locator,
        policies: PolicyBook,
        sessions: ActiveSessions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        auth = settings.auth
        self._region = settings.region
        self._terms = TokenTerms(auth.issuer, auth.audience, auth.token_lifetime_s)
        self._trusted_proxies: Sequence[str] = auth.trusted_proxies
        self._pseudonyms = Pseudonyms(auth.security_pseudonym_key.get_secret_value().encode())
        self._jwe_key = (
            encryption_key(auth.token_encryption_key.get_secret_value())
            if auth.encrypt_tokens or auth.token_encryption_key.get_secret_value()
            else None
        )
        self._encrypt = auth.encrypt_tokens
        self._keys = keys
        self._subscribers = subscribers
        self._events = events
        self._revocations = revocations
        self._geo = geo
        self._policies = policies
        self._sessions = sessions or ActiveSessions()
        self._clock = clock
        self._verifier_cache: tuple[object, TokenVerifier] | None = None

    def ready(self) -> bool:
        return self._subscribers.ready() and self._revocations.ready()

    def _require_ready(self) -> None:
        if not self.ready():
            raise NotReady("still reading the subscriber and revocation lists")

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    def _event_fields(self) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "occurred_at": self._now_ms(),
            "region": self._region,
        }

    # -- subscribers -----------------------------------------------------------------

    def subscriber(self, viewer_id: str) -> SubscriberEntitlements | None:
        return self._subscribers.get(viewer_id)

    def put_subscriber(self, viewer_id: str, fields: Mapping[str, Any]) -> SubscriberEntitlements:
        """Validate and store a subscriber; the session version carries over."""
        self._require_ready()
        record = validate_record(viewer_id, fields)
        current = self._subscribers.get(viewer_id)
        event = record.to_event(
            **self._event_fields(),
            session_version=current.session_version if current is not None else 0,
        )
        self._emit(SUBSCRIBERS_TOPIC, event)
        self._subscribers.wrote(event)
        return event

    # -- locating the client ---------------------------------------------------------

    def client_address(self, peer: str, forwarded_for: str | None, given: str | None) -> str:
        """The client's IP: as given by a trusted caller, else the connection's (via proxies)."""
        if given is not None:
            return given
        return client_ip(peer, forwarded_for, self._trusted_proxies)

    def _locate(self, ip: str) -> GeoFacts:
        try:
            return self._geo.resolve(ip)
        except GeoError as exc:
            raise BadAddress(f"client address {ip!r} is not an IP address") from exc

    def _decide(self, request: AccessRequest) -> AccessDecision:
        return decide_access(request, self._policies.for_content(request.content_id))

    # -- tokens ----------------------------------------------------------------------

    def issue(
        self, *, viewer_id: str, content_id: str, device_id: str, device_class: str, ip: str
    ) -> IssuedToken:
        """A new token (and session), or AccessRefused with the reason."""
        self._require_ready()
        subscriber = check_subscriber(
            self._subscribers.get(viewer_id), content_id=content_id, device_class=device_class
        )
        facts = self._locate(ip)
        viewer_ref = self._pseudonyms.viewer_ref(viewer_id)
        decision = self._decide(
            AccessRequest(
                content_id=content_id,
                device_class=device_class,
                facts=facts,
                active_streams=self._active_streams(viewer_ref, subscriber),
                home_country=subscriber.home_country or None,
                max_streams=subscriber.max_concurrent_streams,
            )
        )
        if not decision.allowed:
            raise AccessRefused(decision.reason, decision.detail)
        claims = build_claims(
            self._terms,
            subscriber,
            now=self._clock(),
            token_id=str(uuid.uuid4()),
            session_id=str(uuid.uuid4()),
            content_id=content_id,
            device_id=device_id,
            device_class=device_class,
            geo=_binding(facts),
            viewer_ref=viewer_ref,
            device_ref=self._pseudonyms.device_ref(device_id),
        )
        return self._hand_out(claims, renewed_from=None)

    def renew(self, token: str | None, *, ip: str) -> IssuedToken:
        """A new token for the session of a valid, unrevoked token with a current version."""
        self._require_ready()
        previous = self.verify(token)
        subscriber = self._subscribers.get(previous.viewer_id)
        if subscriber is None:
            raise AccessRefused("unknown-viewer", "no such subscriber")
        facts = self._locate(ip)
        try:
            claims = renewed_claims(
                self._terms,
                previous,
                subscriber,
                now=self._clock(),
                token_id=str(uuid.uuid4()),
                geo=_binding(facts),
            )
        except AccessRefused as exc:
            if exc.reason == "session-version-stale":
                raise TokenRejected(exc.reason, str(exc)) from exc
            raise
        decision = self._decide(
            AccessRequest(
                content_id=previous.content_id,
                device_class=previous.device.device_class,
                facts=facts,
                home_country=subscriber.home_country or None,
                token_network=previous.geo.network,
                token_asn=previous.geo.asn,
                token_country=previous.geo.country,
                active_streams=self._active_streams(
                    previous.viewer_ref, subscriber, excluding=previous.session_id
                ),
                max_streams=subscriber.max_concurrent_streams,
            )
        )
        if not decision.allowed:
            raise AccessRefused(decision.reason, decision.detail)
        return self._hand_out(claims, renewed_from=previous.token_id)

    def _hand_out(self, claims: PlaybackClaims, *, renewed_from: str | None) -> IssuedToken:
        key, signer = self._keys.signing_key()
        token = sign_token(claims, key.kid, signer)
        if self._encrypt and self._jwe_key is not None:
            token = encrypt_token(token, self._jwe_key)
        issued = TokenIssued(
            **self._event_fields(),
            token_id=claims.token_id,
            session_id=claims.session_id,
            viewer_ref=claims.viewer_ref,
            device_ref=claims.device_ref,
            device_class=claims.device.device_class,
            content_id=claims.content_id,
            country=claims.geo.country or "",
            ip_prefix=claims.geo.network,
            issued_at=claims.issued_at_ms,
            expires_at=claims.expires_at * 1000,
            signing_key_id=key.kid,
            session_version=claims.session_version,
            renewed_from=renewed_from,
        )
        self._emit(TOKENS_ISSUED_TOPIC, issued)
        # Counted here at once; the other instances learn of it from the topic.
        self._sessions.note(issued)
        return IssuedToken(token=token, kid=key.kid, claims=claims)

    def _active_streams(
        self, viewer_ref: str, subscriber: SubscriberEntitlements, *, excluding: str | None = None
    ) -> int:
        """The viewer's other sessions still able to play: unexpired, unrevoked, current."""

        def alive(record: SessionRecord) -> bool:
            return (
                record.session_version >= subscriber.session_version
                and self._revocations.check(record.token) is None
            )

        return self._sessions.count(
            viewer_ref, now_ms=self._now_ms(), excluding=excluding, alive=alive
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._keys.jwks()

    def _verifier(self) -> TokenVerifier:
        ring = self._keys.current()
        cached = self._verifier_cache
        if cached is not None and cached[0] is ring:
            return cached[1]
        verifier = TokenVerifier(
            {k.kid: k.public_key for k in ring.keys},
            issuer=self._terms.issuer,
            audience=self._terms.audience,
            retired_kids=ring.retired_kids(),
            encryption_key=self._jwe_key,
        )
        self._verifier_cache = (ring, verifier)
        return verifier

    def verify_signature(self, token: str | None) -> PlaybackClaims:
        """Claims of a token that is well formed, signed by a live key, and in its lifetime."""
        try:
            return self._verifier().verify(token, now=self._clock())
        except TokenRejected as exc:
            # Another process sharing the keyring may have rotated a moment ago.
            if exc.reason == "kid-unknown" and self._keys.reload():
                return self._verifier().verify(token, now=self._clock())
            raise

    def verify(self, token: str | None) -> PlaybackClaims:
        """verify_signature, then not revoked and not older than the viewer's session version."""
        claims = self.verify_signature(token)
        self._check_standing(claims)
        return claims

    def _check_standing(self, claims: PlaybackClaims) -> None:
        revoked = self._revocations.check(identity_of(claims))
        if revoked is not None:
            raise TokenRejected(revoked, f"the token is revoked ({revoked})")
        subscriber = self._subscribers.get(claims.viewer_id)
        if subscriber is not None:
            try:
                check_session_version(claims, subscriber)
            except AccessRefused as exc:
                raise TokenRejected(exc.reason, str(exc)) from exc

    def introspect(self, token: str | None, *, content_id: str, ip: str) -> Introspection:
        """Everything a license would check; emits TokenUsed for any token we signed.

        TokenRejected (401) for a token that is bad, revoked or stale; AccessRefused (403)
        when the token is good but this use is not allowed.
        """
        self._require_ready()
        claims = self.verify_signature(token)
        facts = self._locate(ip)
        try:
            self._check_standing(claims)
            decision = self._use_decision(claims, content_id, facts)
        except TokenRejected as exc:
            self._record_use(claims, content_id, facts, allowed=False, reason=exc.reason)
            raise
        self._record_use(
            claims, content_id, facts, allowed=decision.allowed, reason=decision.reason
        )
        if not decision.allowed:
            raise AccessRefused(decision.reason, decision.detail)
        return Introspection(claims, decision)

    def _use_decision(
        self, claims: PlaybackClaims, content_id: str, facts: GeoFacts
    ) -> AccessDecision:
        subscriber = self._subscribers.get(claims.viewer_id)
        if subscriber is None or not subscriber.active:
            reason = "unknown-viewer" if subscriber is None else "subscription-inactive"
            return AccessDecision(False, reason, "the subscription does not allow playback")
        if not token_entitles(claims, content_id):
            return AccessDecision(False, "not-entitled", f"the token does not cover {content_id}")
        return self._decide(
            AccessRequest(
                content_id=content_id,
                device_class=claims.device.device_class,
                facts=facts,
                home_country=claims.entitlements.home_country,
                token_network=claims.geo.network,
                token_asn=claims.geo.asn,
                token_country=claims.geo.country,
                max_streams=claims.entitlements.max_streams,
            )
        )

    def _record_use(
        self,
        claims: PlaybackClaims,
        content_id: str,
        facts: GeoFacts,
        *,
        allowed: bool,
        reason: str,
    ) -> None:
        self._emit(
            TOKENS_USED_TOPIC,
            TokenUsed(
                **self._event_fields(),
                token_id=claims.token_id,
                session_id=claims.session_id,
                viewer_ref=claims.viewer_ref,
                device_ref=claims.device_ref,
                content_id=content_id,
                service=INTROSPECTION_SERVICE,
                country=facts.country or "",
                ip_prefix=facts.network,
                asn=facts.asn or 0,
                decision=UseDecision.ALLOWED if allowed else UseDecision.DENIED,
                reason=reason,
            ),
        )

    # -- revocation ------------------------------------------------------------------

    def revoke(
        self, *, scope: RevocationScope, subject: str, reason: str, requested_by: str
    ) -> Revocation:
        """Emit a revocation; a viewer-scope one also bumps the viewer's session version.

        Viewer and device subjects arrive raw and travel as their pseudonyms, the form
        tokens carry (`vref`, `dref`) and the revocation list is keyed by.
        """
        now_ms = self._now_ms()
        covers_until = now_ms + (self._terms.lifetime_s + CLOCK_SKEW_S) * 1000
        if scope is RevocationScope.VIEWER:
            stored_subject = self._pseudonyms.viewer_ref(subject)
        elif scope is RevocationScope.DEVICE:
            stored_subject = self._pseudonyms.device_ref(subject)
        else:
            stored_subject = subject
        revocation_id = str(uuid.uuid4())
        self._emit(
            REVOCATIONS_TOPIC,
            RevocationRequested(
                **self._event_fields(),
                revocation_id=revocation_id,
                scope=scope,
                subject=stored_subject,
                reason=reason,
                requested_by=requested_by,
                covers_until=covers_until,
            ),
        )
        new_version = None
        if scope is RevocationScope.VIEWER:
            current = self._subscribers.get(subject)
            if current is not None:
                bumped = replace(
                    current, **self._event_fields(), session_version=current.session_version + 1
                )
                self._emit(SUBSCRIBERS_TOPIC, bumped)
                self._subscribers.wrote(bumped)
                new_version = bumped.session_version
        return Revocation(revocation_id, covers_until, new_version)

    def _emit(self, topic: str, event: AvroEvent) -> None:
        self._events.send(topic, event, timeout=SEND_TIMEOUT_S)


def _binding(facts: GeoFacts) -> GeoBinding:
    return GeoBinding(country=facts.country, network=facts.network, asn=facts.asn)
