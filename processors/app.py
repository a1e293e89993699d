"""The Faust app: one per worker process, built from the settings object."""

from __future__ import annotations

import faust

from liveward.settings import Settings

APP_ID = "liveward-processors"


def create_app(settings: Settings, *, app_id: str = APP_ID) -> faust.App:
    """A Faust app on the configured brokers with raw-bytes topics (our Avro codec decodes)."""
    datadir = settings.state_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    brokers = ";".join(
        f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")
    )
    app = faust.App(
        app_id,
        broker=brokers,
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=3,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_allow_declare=True,
        topic_disable_leader=True,
        producer_acks=-1,
        broker_session_timeout=settings.kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
    )
    from processors.agents import register_all

    register_all(app, settings)
    return app
