"""The bridge's own settings (to move into `liveward.settings` as `Settings.bridge`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from liveward.settings import Settings


class BridgeSettings(BaseModel):
    """Limits, rate limits and pseudonym epochs of the telemetry bridge."""

    model_config = ConfigDict(frozen=True)

    # Samples per request; more is refused (413 too-many-samples) before any is produced.
    max_samples: int = Field(default=5_000, ge=1, le=100_000)
    # Samples stamped further back or ahead than this are refused (player clocks drift;
    # offline players upload late, but the aggregates' lateness is bounded anyway).
    max_sample_age_s: int = Field(default=86_400, ge=60)
    max_clock_skew_s: int = Field(default=300, ge=0)
    # A new pseudonym key this often (UTC-aligned); pseudonyms do not link across epochs.
    pseudonym_epoch_s: int = Field(default=86_400, ge=60)
    # Default: <state_dir>/bridge/pseudonym-keys.json, shared by every bridge on the host.
    keyring_file: Path | None = None
    # Token bucket per client network, counted in samples; a request costs
    # request_cost + its sample count, so floods of tiny requests are throttled too.
    rate_limit_samples_per_s: float = Field(default=5_000.0, gt=0)
    rate_limit_burst: float = Field(default=20_000.0, gt=0)
    rate_limit_request_cost: float = Field(default=10.0, ge=0)
    # Which addresses share a bucket: /32 is one IPv4 host, /64 one IPv6 subnet (one home).
    rate_limit_ipv4_prefix: int = Field(default=32, ge=8, le=32)
    rate_limit_ipv6_prefix: int = Field(default=64, ge=16, le=128)
    # Buckets kept at most; full (idle) buckets are forgotten first.
    rate_limit_clients: int = Field(default=100_000, ge=100)
    # How long a request waits for Kafka to confirm its samples before answering 503.
    send_timeout_s: float = Field(default=10.0, gt=0)
    # Serving processes on one socket (each about one core); token buckets are split.
    workers: int = Field(default=1, ge=1, le=64)
    # Where samples go; tests and benchmarks use a topic of their own (same layout).
    topic: str = "qoe.telemetry"

    def keyring_path(self, settings: Settings) -> Path:
        return self.keyring_file or settings.state_dir / "bridge" / "pseudonym-keys.json"


class _BridgeEnvironment(BaseSettings):
    """Reads `LIVEWARD_BRIDGE__*` until `Settings` carries a `bridge` section itself."""

    model_config = SettingsConfigDict(
        env_prefix="LIVEWARD_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    bridge: BridgeSettings = BridgeSettings()


def bridge_settings(settings: Settings) -> BridgeSettings:
    """The bridge section of settings, or (until it has one) from `LIVEWARD_BRIDGE__*`."""
    section = getattr(settings, "bridge", None)
    if isinstance(section, BridgeSettings):
        return section
    return _BridgeEnvironment().bridge


def bridge_env(bridge: BridgeSettings) -> dict[str, str]:
    """`bridge` as `LIVEWARD_BRIDGE__*` variables, for a bridge started as a child process."""
    env: dict[str, str] = {}
    for name in type(bridge).model_fields:
        value = getattr(bridge, name)
        if value is not None:
            env[f"LIVEWARD_BRIDGE__{name.upper()}"] = str(value)
    return env
