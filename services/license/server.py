"""The license service as a process: keys, revocations, JWKS, geo and policy wired up, then
REST (uvicorn) and gRPC served side by side in one process."""

from __future__ import annotations

import logging

import uvicorn
from prometheus_client import Gauge

from liveward.settings import Settings
from services.access.geo import GeoResolver
from services.access.policy import PolicyBook
from services.access.revocation import RevocationEnforcer
from services.auth.app import ApiKeys
from services.auth.tokens import encryption_key
from services.heap import settle_heap
from services.keys.keystore import EPOCHS_TOPIC, KeyStore
from services.license.events import LINGER_MS, KafkaLicenseEvents
from services.license.grpc_server import LicenseServicer, create_grpc_server
from services.license.rest import create_license_app
from services.license.service import LicenseService
from services.license.tokens import HttpJwks, PlaybackTokens
from services.license.window import LATE_GRACE_S

log = logging.getLogger(__name__)

# Reading the compacted topics from the start; a service that cannot, should not listen.
CATCH_UP_TIMEOUT_S = 60.0
GRPC_GRACE_S = 2.0


def playback_tokens(settings: Settings) -> PlaybackTokens:
    """Token verification from the auth service's JWKS (not yet fetching: `start()`)."""
    auth = settings.auth
    secret = auth.token_encryption_key.get_secret_value()
    return PlaybackTokens(
        HttpJwks(settings.services.auth_base_url),
        issuer=auth.issuer,
        audience=auth.audience,
        encryption_key=encryption_key(secret) if auth.encrypt_tokens or secret else None,
    )


def run_license_service(
    settings: Settings,
    *,
    host: str,
    port: int,
    grpc_port: int,
    epochs_topic: str = EPOCHS_TOPIC,
    late_grace_s: float = LATE_GRACE_S,
    linger_ms: float = LINGER_MS,
) -> None:
    """Serve REST on host:port and gRPC on host:grpc_port until interrupted.

    Fails before listening when a geo database, the policy file or the topics are
    unusable. `/healthz` (and every request) says not ready until the revocation list and
    the key epochs are read and the JWKS is fetched.
    """
    policies = PolicyBook.load(settings.auth.policy_file)
    tokens = playback_tokens(settings)
    with GeoResolver.from_settings(settings.auth) as geo:
        events = KafkaLicenseEvents(settings, linger_ms=linger_ms)
        revocations = RevocationEnforcer(settings)
        keys = KeyStore(settings, topic=epochs_topic)
        grpc_server = None
        try:
            tokens.start()
            revocations.start(CATCH_UP_TIMEOUT_S)
            keys.start(CATCH_UP_TIMEOUT_S)
            service = LicenseService(
                region=settings.region,
                tokens=tokens,
                revocations=revocations,
                keys=keys,
                geo=geo,
                policies=policies,
                events=events,
                ready=lambda: tokens.ready() and keys.ready(),
                late_grace_s=late_grace_s,
            )
            app = create_license_app(service, trusted_proxies=settings.auth.trusted_proxies)
            registry = app.metrics.registry
            Gauge(
                "liveward_license_signal_failures",
                "TokenUsed / refusal records Kafka did not take (not waited for)",
                registry=registry,
            ).set_function(lambda: events.signal_failures)
            Gauge(
                "liveward_license_token_cache_hits",
                "Requests whose token was verified before (signature not checked again)",
                registry=registry,
            ).set_function(lambda: tokens.cache_hits)
            servicer = LicenseServicer(
                service,
                api_keys=ApiKeys(
                    admin=settings.auth.admin_api_key.get_secret_value(),
                    app=settings.auth.app_api_key.get_secret_value(),
                ),
                trusted_proxies=settings.auth.trusted_proxies,
            )
            bind = f"[{host}]" if ":" in host else host
            grpc_server, _ = create_grpc_server(servicer, f"{bind}:{grpc_port}")
            grpc_server.start()
            settle_heap()
            # services.http.serve takes a FastAPI app; this is the ASGI app in front of one.
            uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")
        finally:
            if grpc_server is not None:
                grpc_server.stop(GRPC_GRACE_S).wait()
            tokens.close()
            keys.close()
            revocations.close()
            events.close()
