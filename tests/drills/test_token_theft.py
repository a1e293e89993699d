"""`liveward drill token-theft` against the live stack, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from liveward.settings import KafkaSettings, ServiceSettings, load_settings

PORT_OFFSET = int(os.environ.get("LIVEWARD_TEST_PORT_OFFSET", "0"))


def test_the_stolen_token_is_stopped_everywhere_and_the_viewer_plays_on(tmp_path: Path) -> None:
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka=KafkaSettings(port=19492 + PORT_OFFSET, controller_port=19493 + PORT_OFFSET),
        services=ServiceSettings(auth_port=18181 + PORT_OFFSET),
    )
    result = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "drill", "token-theft", "--bound-s", "10"],
        env={**os.environ, **settings.as_env(), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "drill passed" in result.stdout
    after = re.search(r"succeeded after enforcement\s*│\s*(\d+) of (\d+)", result.stdout)
    assert after is not None and after.group(1) == "0" and int(after.group(2)) > 0
    everywhere = re.search(r"time to enforcement everywhere\s*│\s*([\d.]+) s", result.stdout)
    assert everywhere is not None and float(everywhere.group(1)) < 10.0
