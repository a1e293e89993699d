"""The S3 Object Lock replica's calls, against a recording stand-in: no S3 exists here.

These check what the replica asks S3 to do (compliance-mode lock, retention, checksum,
key layout, catching up after a failure), not what S3 does; see sinks/worm/s3.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sinks.worm.entries import LogEntry
from sinks.worm.errors import WormError
from sinks.worm.log import LocalLog
from sinks.worm.s3 import ObjectLockReplica

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OpenLog = Callable[..., LocalLog]
Entry = Callable[..., LogEntry]


class RecordingS3:
    """Keeps what put_object was given; lists it back a page of two at a time."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.fail = False

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        if self.fail:
            raise ConnectionError("endpoint unreachable")
        self.objects[kwargs["Key"]] = kwargs
        return {}

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        keys = sorted(k for k in self.objects if k.startswith(kwargs["Prefix"]))
        start = int(kwargs.get("ContinuationToken", 0))
        page = keys[start : start + 2]
        more = start + 2 < len(keys)
        return {
            "Contents": [{"Key": k} for k in page],
            "IsTruncated": more,
            **({"NextContinuationToken": str(start + 2)} if more else {}),
        }


@pytest.fixture
def s3() -> RecordingS3:
    return RecordingS3()


def replica(s3: RecordingS3, log_dir: Path) -> ObjectLockReplica:
    return ObjectLockReplica(
        s3, bucket="audit", prefix="licenses/eu-west", log_dir=log_dir, retention_days=2555,
        clock=lambda: NOW,
    )  # fmt: skip


def test_every_sealed_file_is_uploaded_locked_in_compliance_mode(
    s3: RecordingS3, tmp_path: Path, open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=4, replica=replica(s3, tmp_path / "log")) as log:
        log.append([license_entry(o) for o in range(9)])
        log.checkpoint()
    assert sorted(s3.objects) == [
        "licenses/eu-west/checkpoints/00000000000000000004.note",
        "licenses/eu-west/checkpoints/00000000000000000008.note",
        "licenses/eu-west/checkpoints/00000000000000000009.note",
        "licenses/eu-west/log.json",
        "licenses/eu-west/segments/00000000000000000000.idx",
        "licenses/eu-west/segments/00000000000000000000.seg",
        "licenses/eu-west/segments/00000000000000000004.idx",
        "licenses/eu-west/segments/00000000000000000004.seg",
    ]
    segment = s3.objects["licenses/eu-west/segments/00000000000000000004.seg"]
    assert segment["Bucket"] == "audit"
    assert segment["ObjectLockMode"] == "COMPLIANCE"
    assert segment["ObjectLockRetainUntilDate"] == NOW + dt.timedelta(days=2555)
    body = (tmp_path / "log" / "segments" / "00000000000000000004.seg").read_bytes()
    assert segment["Body"] == body
    assert segment["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_a_failed_upload_fails_the_write_and_is_caught_up_on_reopen(
    s3: RecordingS3, tmp_path: Path, open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=100, replica=replica(s3, tmp_path / "log")) as log:
        log.append([license_entry(0)])
        s3.fail = True
        with pytest.raises(WormError) as caught:
            log.checkpoint()
        assert caught.value.reason == "replica-failed"
    s3.fail = False
    with open_log(segment_records=100, replica=replica(s3, tmp_path / "log")):
        assert "licenses/eu-west/checkpoints/00000000000000000001.note" in s3.objects
