"""The auth service as a process: Kafka, views, geo, policy and keys wired up, then served."""

from __future__ import annotations

from pathlib import Path

from liveward.settings import Settings
from services.access.geo import GeoResolver
from services.access.policy import PolicyBook
from services.access.revocation import RevocationEnforcer
from services.auth.app import create_auth_app
from services.auth.service import SUBSCRIBERS_TOPIC, AuthService
from services.auth.sessions import ActiveSessions, IssuedTokensFollower
from services.auth.signing_keys import KeyringFile, RotationSchedule, SigningKeys
from services.auth.subscribers import SubscriberDirectory
from services.auth.tokens import CLOCK_SKEW_S
from services.http import serve
from streams.events import SubscriberEntitlements
from streams.producer import EventProducer
from streams.views import CompactedTopicView

# Reading the compacted topics from the start; a service that cannot, should not listen.
CATCH_UP_TIMEOUT_S = 60.0


def keyring_path(settings: Settings) -> Path:
    """Where every auth process on this machine keeps the shared signing keyring."""
    return settings.state_dir / "auth" / "signing-keys.json"


def signing_keys(settings: Settings) -> SigningKeys:
    schedule = RotationSchedule(
        rotation_s=settings.auth.signing_key_rotation_s,
        token_lifetime_s=settings.auth.token_lifetime_s,
        clock_skew_s=CLOCK_SKEW_S,
    )
    return SigningKeys(KeyringFile(keyring_path(settings)), schedule)


def run_auth_service(settings: Settings, *, host: str, port: int) -> None:
    """Serve the auth edge on host:port until interrupted, then close what it opened.

    Fails before listening when the keyring, a geo database, the policy file or the
    topics are unusable, so a broken deployment never answers a viewer.
    """
    keys = signing_keys(settings)
    keys.current()
    policies = PolicyBook.load(settings.auth.policy_file)
    with GeoResolver.from_settings(settings.auth) as geo:
        producer = EventProducer(settings)
        subscribers: CompactedTopicView[SubscriberEntitlements] = CompactedTopicView(
            settings, SUBSCRIBERS_TOPIC, SubscriberEntitlements
        )
        revocations = RevocationEnforcer(settings)
        sessions = ActiveSessions()
        issued = IssuedTokensFollower(settings, sessions)
        try:
            subscribers.start(CATCH_UP_TIMEOUT_S)
            revocations.start(CATCH_UP_TIMEOUT_S)
            issued.start(CATCH_UP_TIMEOUT_S)
            service = AuthService(
                settings,
                keys=keys,
                subscribers=SubscriberDirectory(subscribers),
                events=producer,
                revocations=revocations,
                geo=geo,
                policies=policies,
                sessions=sessions,
            )
            app = create_auth_app(service, settings)
            serve(app, host, port)
        finally:
            issued.close()
            revocations.close()
            subscribers.close()
            producer.close()
