"""The bridge as a process: keyring, geo databases and the producer wired up, then served."""

from __future__ import annotations

from liveward.settings import Settings
from services.access.client_ip import trusted_networks
from services.access.geo import GeoResolver
from services.bridge.app import create_bridge_app
from services.bridge.bridge import TelemetryBridge
from services.bridge.epochs import KeyringFile, epoch_label
from services.bridge.records import SampleEncoder
from services.bridge.settings import BridgeSettings, bridge_settings
from services.http import serve
from streams.meta import now_ms
from streams.producer import EventProducer

# Large batches in flight from many handlers at once: let librdkafka fill big requests.
PRODUCER_TUNING = {"linger.ms": 5, "batch.size": 1_000_000, "batch.num.messages": 10_000}


def keyring(settings: Settings, bridge: BridgeSettings) -> KeyringFile:
    """The pseudonym epoch keyring every bridge on this host shares."""
    return KeyringFile(bridge.keyring_path(settings))


def run_bridge_service(settings: Settings, *, host: str, port: int) -> None:
    """Serve the bridge on host:port until interrupted, then flush and close.

    Fails before listening when the keyring, a geo database, a trusted-proxy entry or
    the sample schema is unusable, so a broken deployment never answers a player.
    """
    bridge_config = bridge_settings(settings)
    trusted_networks(settings.auth.trusted_proxies)
    keys = keyring(settings, bridge_config)
    received = now_ms()
    keys.current(epoch_label(received, bridge_config.pseudonym_epoch_s), received)
    with GeoResolver.from_settings(settings.auth) as geo:
        # librdkafka gives up on a record about when the request waiting for it does, so
        # a sample answered 503 is rarely stored later (the player resends it).
        producer = EventProducer(
            settings,
            config={
                **PRODUCER_TUNING,
                "message.timeout.ms": max(1_000, int(bridge_config.send_timeout_s * 1000)),
            },
        )
        try:
            bridge = TelemetryBridge(
                region=settings.region,
                settings=bridge_config,
                trusted_proxies=settings.auth.trusted_proxies,
                keys=keys,
                encoder=SampleEncoder(producer.codec),
                log=producer,
                geo=geo,
            )
            app = create_bridge_app(bridge, max_body_bytes=settings.services.max_body_bytes)
            serve(app, host, port)
        finally:
            producer.close()
