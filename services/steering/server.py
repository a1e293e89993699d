"""The steering service as a process: the compacted views wired up, then served."""

from __future__ import annotations

from liveward.settings import Settings
from services.http import serve
from services.steering.app import SteeringMetrics, create_steering_app
from services.steering.source import KafkaSteeringSource

# Reading the compacted topics from the start; a service that cannot, should not listen.
CATCH_UP_TIMEOUT_S = 60.0


def run_steering_service(settings: Settings, *, host: str, port: int) -> None:
    """Serve the steering edge on host:port until interrupted, then close what it opened."""
    source = KafkaSteeringSource(settings)
    app = create_steering_app(settings, source)
    metrics: SteeringMetrics = app.state.steering_metrics
    source.on_update = lambda _state, lag_ms: metrics.observe_visible(lag_ms)
    try:
        source.start(CATCH_UP_TIMEOUT_S)
        source.wait_ready(CATCH_UP_TIMEOUT_S)
        serve(app, host, port)
    finally:
        source.close()
