"""The one settings object: built once at the edge of the program and passed down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = "127.0.0.1"


class KafkaSettings(BaseModel):
    """Where the Kafka brokers listen; node i uses `port + i * port_step`."""

    model_config = ConfigDict(frozen=True)

    host: str = LOOPBACK
    port: int = 9092
    controller_port: int = 9093
    port_step: int = 100
    brokers: int = Field(default=1, ge=1, le=5)
    heap_mb: int = 512
    # Faust and the producers fail fast in tests when this is lowered.
    session_timeout_ms: int = 10_000

    def broker_port(self, node: int) -> int:
        return self.port + node * self.port_step

    def controller_port_of(self, node: int) -> int:
        return self.controller_port + node * self.port_step

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{self.broker_port(n)}" for n in range(self.brokers))

    @property
    def replication_factor(self) -> int:
        return 3 if self.brokers >= 3 else 1

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.brokers >= 3 else 1


class ClickHouseSettings(BaseModel):
    """Which ClickHouse backend the sinks write to, and where the server listens."""

    model_config = ConfigDict(frozen=True)

    backend: Literal["embedded", "server"] = "embedded"
    host: str = LOOPBACK
    native_port: int = 9000
    http_port: int = 8123
    interserver_port: int = 9009
    database: str = "liveward"
    user: str = "default"
    password: SecretStr = SecretStr("")
    # The embedded (chdb) data path; one process may hold it at a time.
    embedded_path: Path | None = None


class ServiceSettings(BaseModel):
    """Where the HTTP/gRPC edges listen (loopback by default)."""

    model_config = ConfigDict(frozen=True)

    host: str = LOOPBACK
    console_port: int = 8080
    auth_port: int = 8081
    license_port: int = 8082
    license_grpc_port: int = 50051
    bridge_port: int = 8083
    steering_port: int = 8084
    # Requests larger than this are refused with 413 before they are parsed.
    max_body_bytes: int = 1_048_576
    # Where other services find the auth service's JWKS; default: this host's auth port.
    auth_url: str | None = None

    @property
    def auth_base_url(self) -> str:
        return self.auth_url or f"http://{self.host}:{self.auth_port}"


class MediaSettings(BaseModel):
    """The media plane: where segments come from, CDNs per region, origin and edge ports."""

    model_config = ConfigDict(frozen=True)

    # "synthetic": generated stand-in segments (cheap; thousands of simulated players fit
    # on two cores). "ffmpeg": a real H.264/AAC encoder per region and ffmpeg packagers
    # writing HLS AES-128 under the key hierarchy's rotating keys (a browser can play it).
    source: Literal["synthetic", "ffmpeg"] = "synthetic"
    ffmpeg_binary: str = "ffmpeg"
    # The live test picture the ffmpeg encoder makes (lavfi testsrc2 + sine).
    video_width: int = Field(default=640, ge=16)
    video_height: int = Field(default=360, ge=16)
    video_fps: int = Field(default=25, ge=1, le=60)
    video_bitrate_kbps: int = Field(default=800, ge=50)
    audio_bitrate_kbps: int = Field(default=96, ge=16)

    cdns: tuple[str, ...] = ("cdn-a", "cdn-b")
    # The origin of region i listens on origin_port_base + i; the edge of (region i,
    # CDN j) on edge_port_base + i * len(cdns) + j.
    origin_port_base: int = 8100
    edge_port_base: int = 8200
    segment_seconds: float = 2.0
    playlist_segments: int = 6
    # Players re-read the steering manifest this often; failover can be no faster.
    steering_ttl_s: int = 2


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


class KeySettings(BaseModel):
    """Content-key periods and epoch rotation (see services/keys)."""

    model_config = ConfigDict(frozen=True)

    # A content key lives one period; a license carries the current and the next one.
    period_seconds: int = Field(default=60, ge=10, le=86_400)
    # A new epoch master key this often, published lead_seconds ahead.
    epoch_seconds: int = 86_400
    lead_seconds: int = 3_600
    # How far back a key id may be looked up (DVR windows, late players).
    lookback_seconds: int = 3_600


class WormSettings(BaseModel):
    """The tamper-evident license log (see sinks/worm)."""

    model_config = ConfigDict(frozen=True)

    log_dir: Path | None = None
    checkpoint_records: int = 1_000
    checkpoint_interval_s: float = 10.0
    segment_records: int = 65_536


class AuthSettings(BaseModel):
    """Playback tokens, signing keys, geo databases and the access policy."""

    model_config = ConfigDict(frozen=True)

    issuer: str = "liveward-auth"
    audience: str = "liveward-playback"
    token_lifetime_s: int = 300
    # A signing key signs for this long, then stays valid for verification one lifetime more.
    signing_key_rotation_s: int = 3_600
    encrypt_tokens: bool = False
    # 32 bytes, base64url: the JWE content key (alg dir, enc A256GCM) when encrypt_tokens.
    token_encryption_key: SecretStr = SecretStr("")
    # Bearer keys: admin (subscribers, revocations, tokens) and app backends (tokens only).
    admin_api_key: SecretStr = SecretStr("liveward-dev-admin-key-change-me")
    app_api_key: SecretStr = SecretStr("liveward-dev-app-key-change-me")
    # Keys the security-topic pseudonyms (viewer_ref, device_ref); rotate with care.
    security_pseudonym_key: SecretStr = SecretStr("liveward-dev-security-key-change-me")
    geo_city_db: Path | None = None
    geo_asn_db: Path | None = None
    geo_anonymous_db: Path | None = None
    policy_file: Path | None = None
    # Only these peers may set X-Forwarded-For (CIDRs).
    trusted_proxies: tuple[str, ...] = ()
    # Theft detection: uses of one session inside this window must agree.
    theft_window_s: int = 300
    # Distinct /24 (/48) networks one session may use at once (mobile hand-over needs 2).
    theft_max_networks: int = 2


class AnalyticsSettings(BaseModel):
    """QoE windows, the k-anonymity floor, the DP export budget and analytics retention."""

    model_config = ConfigDict(frozen=True)

    # Tumbling QoE windows on event time; a window closes once the watermark (the bridge's
    # clock, occurred_at) passes its end plus the allowed lateness. Players report every
    # few seconds, so 5 s of lateness keeps late samples rare and aggregates 15 s fresh.
    window_ms: int = Field(default=10_000, ge=100)
    lateness_ms: int = Field(default=5_000, ge=0)
    # A published aggregate covers at least this many distinct viewer pseudonyms.
    k_anonymity: int = Field(default=10, ge=2)
    # Privacy-loss budget per data day for `liveward analytics dp-export`.
    dp_epsilon_per_day: float = Field(default=1.0, gt=0)
    # Day partitions of analytics tables older than this are dropped (0 = today only).
    retention_days: int = Field(default=30, ge=0)


class ConsoleSettings(BaseModel):
    """The web console `liveward run` serves on services.console_port."""

    model_config = ConfigDict(frozen=True)

    # The subscriber the console's own player watches as (created by `liveward run`).
    viewer_id: str = "console-viewer"
    content_id: str = "match-of-the-day"
    # hls.js, installed by `npm ci` from the repository's package-lock.json (pinned); a
    # relative path is taken under the repository root.
    hlsjs_path: Path = Path(__file__).resolve().parents[1] / "node_modules/hls.js/dist/hls.min.js"


class Settings(BaseSettings):
    """Everything configurable, from `LIVEWARD_*` environment variables (nested with `__`)."""

    model_config = SettingsConfigDict(
        env_prefix="LIVEWARD_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    region: str = "eu-west"
    regions: tuple[str, ...] = ("eu-west", "us-east")
    state_dir: Path = Path(".state")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "liveward")
    # "local" runs the stack from infra/ as processes; "docker" uses testcontainers.
    stack: Literal["local", "docker"] = "local"
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    services: ServiceSettings = ServiceSettings()
    auth: AuthSettings = AuthSettings()
    keys: KeySettings = KeySettings()
    media: MediaSettings = MediaSettings()
    bridge: BridgeSettings = BridgeSettings()
    worm: WormSettings = WormSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    console: ConsoleSettings = ConsoleSettings()

    def as_env(self) -> dict[str, str]:
        """These settings as LIVEWARD_* variables, for child processes (worker, services)."""
        env: dict[str, str] = {}

        def flatten(prefix: str, value: object) -> None:
            if isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    flatten(f"{prefix}{name.upper()}__", getattr(value, name))
                return
            key = prefix.removesuffix("__")
            if isinstance(value, SecretStr):
                env[key] = value.get_secret_value()
            elif isinstance(value, tuple | list):
                env[key] = json.dumps(list(value))
            elif isinstance(value, Path):
                env[key] = str(value.resolve())
            elif value is not None:
                env[key] = str(value)

        flatten("LIVEWARD_", self)
        return env

    @property
    def chdb_path(self) -> Path:
        return self.clickhouse.embedded_path or self.state_dir / "chdb"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]
