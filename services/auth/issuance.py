"""Pure decisions of token issue and renewal: who may have a token, and what it says.

No clock, no Kafka, no keys: the time, ids and the client's location come in as
arguments, so every refusal and every claim is tested without I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.auth.errors import AccessRefused
from services.auth.subscribers import DEVICE_CLASSES, entitled
from services.auth.tokens import DeviceBinding, Entitlements, GeoBinding, PlaybackClaims
from streams.events import SubscriberEntitlements


@dataclass(frozen=True, slots=True)
class TokenTerms:
    """What every token of this issuer shares (from the auth settings)."""

    issuer: str
    audience: str
    lifetime_s: int


def check_subscriber(
    subscriber: SubscriberEntitlements | None, *, content_id: str, device_class: str
) -> SubscriberEntitlements:
    """The subscriber if it may have a token for content_id on device_class; else AccessRefused."""
    if device_class not in DEVICE_CLASSES:
        raise AccessRefused("unknown-device-class", f"device class {device_class!r} is unknown")
    if subscriber is None:
        raise AccessRefused("unknown-viewer", "no such subscriber")
    if not subscriber.active:
        raise AccessRefused("subscription-inactive", "the subscription is not active")
    if device_class not in subscriber.device_classes:
        raise AccessRefused(
            "device-class-not-allowed", f"the subscription does not cover {device_class} devices"
        )
    if not entitled(subscriber.packages, subscriber.content_ids, content_id):
        raise AccessRefused("not-entitled", f"the subscription does not include {content_id}")
    return subscriber


def build_claims(
    terms: TokenTerms,
    subscriber: SubscriberEntitlements,
    *,
    now: float,
    token_id: str,
    session_id: str,
    content_id: str,
    device_id: str,
    device_class: str,
    geo: GeoBinding,
    viewer_ref: str,
    device_ref: str,
) -> PlaybackClaims:
    """The claims of a new token, valid from now for one lifetime."""
    issued_at = round(now, 3)
    start = math.floor(issued_at)
    return PlaybackClaims(
        issuer=terms.issuer,
        audience=terms.audience,
        viewer_id=subscriber.viewer_id,
        issued_at=issued_at,
        not_before=start,
        expires_at=start + terms.lifetime_s,
        token_id=token_id,
        session_id=session_id,
        content_id=content_id,
        entitlements=Entitlements(
            packages=subscriber.packages,
            max_streams=subscriber.max_concurrent_streams,
            home_country=subscriber.home_country or None,
        ),
        geo=geo,
        device=DeviceBinding(device_id=device_id, device_class=device_class),
        viewer_ref=viewer_ref,
        device_ref=device_ref,
        session_version=subscriber.session_version,
    )


def check_session_version(claims: PlaybackClaims, subscriber: SubscriberEntitlements) -> None:
    """Refuse a token minted before the viewer's last viewer-scope revocation."""
    if claims.session_version < subscriber.session_version:
        raise AccessRefused(
            "session-version-stale",
            f"the token carries session version {claims.session_version}, "
            f"the viewer is at {subscriber.session_version}",
        )


def renewed_claims(
    terms: TokenTerms,
    previous: PlaybackClaims,
    subscriber: SubscriberEntitlements,
    *,
    now: float,
    token_id: str,
    geo: GeoBinding,
) -> PlaybackClaims:
    """The claims of the token that renews previous: same session, device and content.

    The subscriber is checked again (still active, still entitled, same session
    version), and the entitlements and location are taken afresh.
    """
    check_session_version(previous, subscriber)
    check_subscriber(
        subscriber, content_id=previous.content_id, device_class=previous.device.device_class
    )
    return build_claims(
        terms,
        subscriber,
        now=now,
        token_id=token_id,
        session_id=previous.session_id,
        content_id=previous.content_id,
        device_id=previous.device.device_id,
        device_class=previous.device.device_class,
        geo=geo,
        viewer_ref=previous.viewer_ref,
        device_ref=previous.device_ref,
    )


def token_entitles(claims: PlaybackClaims, content_id: str) -> bool:
    """True if the token's holder may watch content_id: its own content or its packages."""
    return entitled(claims.entitlements.packages, (claims.content_id,), content_id)
