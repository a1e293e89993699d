"""`liveward run` from the outside: it comes up, plays, loses a region, and checks itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from liveward.settings import KafkaSettings, MediaSettings, ServiceSettings, load_settings


def test_liveward_run_brings_the_system_up_and_every_check_passes(
    tmp_path: Path, port_offset: int
) -> None:
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka=KafkaSettings(port=19392 + port_offset, controller_port=19393 + port_offset),
        services=ServiceSettings(
            console_port=18380 + port_offset,
            auth_port=18381 + port_offset,
            license_port=18391 + port_offset,
            license_grpc_port=18401 + port_offset,
            steering_port=18384 + port_offset,
            bridge_port=18383 + port_offset,
        ),
        media=MediaSettings(
            origin_port_base=18410 + port_offset, edge_port_base=18420 + port_offset
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "run", "--duration", "30", "--players", "60"],
        env={**os.environ, **settings.as_env(), "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    summary = result.stdout[result.stdout.index("summary") :]
    assert "FAIL" not in summary
    for check in (
        "players were served",
        "moved to us-east",
        "failed eu-west over",
        "keys rotated on schedule",
        "tamper-evident log",
        "audit verify",
        "landed in ClickHouse",
        "privacy scan",
    ):
        assert check in summary, check

    # It stopped what it started: the stack is down again.
    status = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "stack", "status"],
        env={**os.environ, **settings.as_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode != 0
