"""`liveward run` from the outside: it starts everything, runs a live event, and checks itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from liveward.settings import KafkaSettings, load_settings


def test_liveward_run_brings_the_system_up_and_every_check_passes(
    tmp_path: Path, port_offset: int
) -> None:
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka=KafkaSettings(port=19392 + port_offset, controller_port=19393 + port_offset),
    )
    result = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "run", "--duration", "8", "--rate", "500"],
        env={**os.environ, **settings.as_env(), "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = result.stdout[result.stdout.index("summary") :]
    assert summary.count("pass") == 4
    assert "FAIL" not in summary
    produced = re.search(r"qoe\.telemetry\s*│\s*([\d,]+)", result.stdout)
    assert produced is not None, result.stdout[-3000:]
    samples = int(produced.group(1).replace(",", ""))
    assert samples >= 7 * 500 and samples % 500 == 0  # whole ticks of 500, all confirmed

    # It stopped what it started: no Kafka is left on its port.
    status = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "stack", "status"],
        env={**os.environ, **settings.as_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode != 0
