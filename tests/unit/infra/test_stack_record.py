"""The stack record that lets `status` and `down` find, from another process, what `up` started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.errors import StackError
from infra.stack import Stack
from liveward.settings import KafkaSettings, Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Ports nothing on a test machine listens on, so nothing counts as healthy.
    return load_settings(state_dir=tmp_path, kafka=KafkaSettings(port=45092, controller_port=45093))


def test_a_stack_never_brought_up_has_no_status_and_nothing_to_stop(settings: Settings) -> None:
    stack = Stack(settings)
    assert stack.status() == []
    assert stack.down() == []


def test_status_follows_the_recorded_layout_and_ports(settings: Settings) -> None:
    kafka = KafkaSettings(port=46092, controller_port=46093, brokers=3)
    record = {
        "backend": "local",
        "brokers": 3,
        "clickhouse": "embedded",
        "kafka": kafka.model_dump(mode="json"),
    }
    (settings.state_dir / "stack.json").write_text(json.dumps(record))
    rows = Stack(settings).status()
    assert [row.service for row in rows] == [
        "kafka-0",
        "kafka-1",
        "kafka-2",
        "clickhouse (embedded chdb)",
    ]
    assert [row.address for row in rows[:3]] == [
        "127.0.0.1:46092",
        "127.0.0.1:46192",
        "127.0.0.1:46292",
    ]
    assert not any(row.healthy or row.pid for row in rows[:3])
    assert rows[3].address == str(settings.chdb_path)

    Stack(settings).down()
    assert Stack(settings).status() == []


def test_a_corrupt_record_is_a_clear_error(settings: Settings) -> None:
    (settings.state_dir / "stack.json").write_text("{not json")
    with pytest.raises(StackError, match=r"stack\.json is unreadable"):
        Stack(settings).status()
