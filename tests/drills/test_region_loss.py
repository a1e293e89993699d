"""`liveward drill region-loss` against the live system, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from liveward.settings import KafkaSettings, MediaSettings, ServiceSettings, load_settings

PORT_OFFSET = int(os.environ.get("LIVEWARD_TEST_PORT_OFFSET", "0"))


def test_players_move_to_the_surviving_region_within_the_bound(tmp_path: Path) -> None:
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka=KafkaSettings(port=19692 + PORT_OFFSET, controller_port=19693 + PORT_OFFSET),
        services=ServiceSettings(steering_port=18684 + PORT_OFFSET),
        media=MediaSettings(
            origin_port_base=18700 + PORT_OFFSET, edge_port_base=18710 + PORT_OFFSET
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "drill", "region-loss", "--players", "100",
         "--bound-s", "10"],
        env={**os.environ, **settings.as_env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )  # fmt: skip
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "drill passed" in result.stdout
    moved = re.search(r"99% of players on the surviving region ([\d.]+) s", result.stdout)
    assert moved is not None and float(moved.group(1)) < 10.0
    stalled = re.search(r"players who stalled\s*│\s*(\d+) of", result.stdout)
    assert stalled is not None and stalled.group(1) == "0"  # no stall when a packager dies
    assert "each player's stall time" in result.stdout
    # The control plane's state, rebuilt from the topics alone, equals the live state.
    assert re.search(
        r"replay of the control plane from the log: [1-9]\d* states, 0 differ", result.stdout
    )
