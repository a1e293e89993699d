"""The bridge's settings: `Settings.bridge` (liveward.settings), and passing them on."""

from __future__ import annotations

from liveward.settings import BridgeSettings, Settings

__all__ = ["BridgeSettings", "bridge_env", "bridge_settings"]


def bridge_settings(settings: Settings) -> BridgeSettings:
    return settings.bridge


def bridge_env(bridge: BridgeSettings) -> dict[str, str]:
    """`bridge` as `LIVEWARD_BRIDGE__*` variables, for a bridge started as a child process."""
    env: dict[str, str] = {}
    for name in type(bridge).model_fields:
        value = getattr(bridge, name)
        if value is not None:
            env[f"LIVEWARD_BRIDGE__{name.upper()}"] = str(value)
    return env
