"""The bridge as a process: keyring, geo databases and the producer wired up, then served.

One process holds one GIL: it parses, validates, pseudonymises and encodes on about one
core. `workers > 1` forks that many serving processes, each with its own producer and
its own listening socket on the same port (SO_REUSEPORT): the kernel spreads new
connections over the sockets by address hash. (One shared socket let whichever process
woke first accept a whole burst of connections: a bench's 8 keep-alive connections all
landed in one process, the other idle.) The token buckets are split between them.
Forking happens before any thread or connection exists, which is what makes it safe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import traceback
from typing import Any

import uvicorn

from liveward.settings import Settings
from services.access.client_ip import trusted_networks
from services.access.geo import GeoResolver
from services.bridge.app import create_bridge_app
from services.bridge.bridge import TelemetryBridge
from services.bridge.epochs import KeyringFile, epoch_label
from services.bridge.records import BlockEncoder
from services.bridge.settings import BridgeSettings, bridge_settings
from streams.catalog import CATALOG
from streams.meta import now_ms
from streams.producer import EventProducer

# Large batches in flight from many handlers at once: let librdkafka fill big requests.
PRODUCER_TUNING = {"linger.ms": 5, "batch.size": 1_000_000, "batch.num.messages": 10_000}
# The bridge groups samples by the partition count the catalog gives the telemetry topic
# (`liveward topics apply` keeps the topic at it; the bridge does not ask the broker, so
# it starts, and answers 503, while Kafka is down).
TELEMETRY_TOPIC = "qoe.telemetry"


def keyring(settings: Settings, bridge: BridgeSettings) -> KeyringFile:
    """The pseudonym epoch keyring every bridge on this host shares."""
    return KeyringFile(bridge.keyring_path(settings))


def _serve(settings: Settings, bridge_config: BridgeSettings, **where: Any) -> None:
    """One serving process: geo, producer and bridge, until uvicorn stops."""
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
                keys=keyring(settings, bridge_config),
                encoder=BlockEncoder(producer.codec, CATALOG[TELEMETRY_TOPIC].partitions),
                log=producer,
                geo=geo,
            )
            app = create_bridge_app(bridge, max_body_bytes=settings.services.max_body_bytes)
            config = uvicorn.Config(app, access_log=False, log_level="warning", **where)
            server = uvicorn.Server(config)
            if "fd" in where:
                server.run(sockets=[socket.socket(fileno=where["fd"])])
            else:
                server.run()
        finally:
            producer.close()


def run_bridge_service(
    settings: Settings, *, host: str, port: int, workers: int | None = None
) -> None:
    """Serve the bridge on host:port until interrupted, then flush and close.

    Fails before listening when the keyring, a geo database, a trusted-proxy entry or
    the sample schema is unusable, so a broken deployment never answers a player.
    """
    bridge_config = bridge_settings(settings)
    workers = workers or bridge_config.workers
    trusted_networks(settings.auth.trusted_proxies)
    GeoResolver.from_settings(settings.auth).close()
    received = now_ms()
    keyring(settings, bridge_config).current(
        epoch_label(received, bridge_config.pseudonym_epoch_s), received
    )
    if workers <= 1:
        _serve(settings, bridge_config, host=host, port=port)
        return
    shared = bridge_config.model_copy(
        update={
            "rate_limit_samples_per_s": bridge_config.rate_limit_samples_per_s / workers,
            "rate_limit_burst": bridge_config.rate_limit_burst / workers,
        }
    )
    # Every socket is bound before any worker starts, so a port in use fails here.
    listeners = [
        socket.create_server((host, port), backlog=2048, reuse_port=True) for _ in range(workers)
    ]
    children = []
    for mine in listeners:
        pid = os.fork()
        if pid == 0:  # the worker: serve until stopped, never return into the parent's loop
            try:
                for other in listeners:
                    if other is not mine:
                        other.close()
                _serve(settings, shared, fd=mine.fileno())
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        children.append(pid)
    for listener in listeners:
        listener.close()
    _wait_for(children)


def _wait_for(children: list[int]) -> None:
    """Wait for every worker; a signal to this process is passed on to each of them."""

    def forward(signum: int, _: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for pid in children:
        os.waitpid(pid, 0)
