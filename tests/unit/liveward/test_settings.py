"""The settings object: environment overrides, and passing itself to child processes."""

from __future__ import annotations

import pytest

from liveward.settings import ClickHouseSettings, KafkaSettings, Settings, load_settings


def test_defaults_are_the_documented_loopback_ports() -> None:
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert (settings.clickhouse.native_port, settings.clickhouse.http_port) == (9000, 8123)


def test_three_brokers_use_distinct_ports_and_replication_three() -> None:
    kafka = KafkaSettings(brokers=3)
    assert kafka.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)


def test_environment_overrides_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEWARD_KAFKA__PORT", "29092")
    monkeypatch.setenv("LIVEWARD_CLICKHOUSE__BACKEND", "server")
    settings = load_settings()
    assert settings.kafka.port == 29092
    assert settings.clickhouse.backend == "server"


def test_as_env_rebuilds_equal_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    original = load_settings(
        region="us-east",
        state_dir=tmp_path,
        kafka=KafkaSettings(port=19092, brokers=3),
        clickhouse=ClickHouseSettings(backend="server", password="s3cret"),
    )
    for key, value in original.as_env().items():
        monkeypatch.setenv(key, value)
    assert load_settings() == original


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.region = "elsewhere"  # type: ignore[misc]
