"""`liveward drill key-leak` against the live stack, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from liveward.settings import KafkaSettings, ServiceSettings, load_settings

PORT_OFFSET = int(os.environ.get("LIVEWARD_TEST_PORT_OFFSET", "0"))


def test_both_leaks_are_contained_and_no_leaked_key_is_served_again(tmp_path: Path) -> None:
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka=KafkaSettings(port=19592 + PORT_OFFSET, controller_port=19593 + PORT_OFFSET),
        services=ServiceSettings(
            auth_port=18281 + PORT_OFFSET,
            license_port=18291 + PORT_OFFSET,
            license_grpc_port=18301 + PORT_OFFSET,
        ),
    )
    result = subprocess.run(
        [sys.executable, "-m", "liveward.cli", "drill", "key-leak", "--bound-s", "10"],
        env={**os.environ, **settings.as_env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "drill passed" in result.stdout
    leaked_after = re.findall(
        r"licenses with a leaked key after the switch\s*│\s*(\d+) of", result.stdout
    )
    assert leaked_after == ["0", "0"]
    assert re.search(
        r"content key: exposed after the response\s*│\s*drill-keys, periods (\d+)\.\.\1 ",
        result.stdout,
    )
    assert "session-revoked" in result.stdout and "unknown-key-id" in result.stdout
