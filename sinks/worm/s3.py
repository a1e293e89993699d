"""An S3 Object Lock (compliance mode) replica of the log's sealed files. UNTESTED against S3.

There is no S3 where liveward is built, so this module has only been run against a
recording stand-in for the S3 client (tests/unit/sinks/worm/test_worm_s3_replica.py), which
checks the calls it makes, not what S3 does with them. Treat it as a starting point.

What it does: every file the local log seals (log.json, each checkpoint note as it is
signed, each full segment and its index) is uploaded under `<prefix>/<same relative
path>` with `ObjectLockMode=COMPLIANCE` and a retain-until date `retention_days` ahead,
and a SHA-256 checksum S3 verifies on receipt. In compliance mode nobody, the bucket
owner and root account included, can delete or overwrite a locked object version
before that date. So once a checkpoint is in the bucket, removing records from the end
of the local log together with the checkpoints that signed them is no longer
undetectable: the bucket still holds the signed roots. The records of the segment being
written reach the bucket when that segment seals; until then the bucket holds the
signed roots that commit to them.

The bucket must have been created with Object Lock enabled (which turns on
versioning). To audit from the bucket: `aws s3 sync s3://bucket/prefix DIR`, then
`liveward audit verify --log DIR` (records of the unsealed segment will be missing:
checkpoints past the last sealed segment report `truncated`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sinks.worm.errors import WormError


class S3Client(Protocol):
    """The two calls of boto3's S3 client this replica makes."""

    def put_object(self, **kwargs: Any) -> Any: ...

    def list_objects_v2(self, **kwargs: Any) -> Any: ...


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ObjectLockReplica:
    """Uploads sealed log files to S3, locked in compliance mode (a SealedFileReplica)."""

    def __init__(
        self,
        client: S3Client,
        *,
        bucket: str,
        prefix: str,
        log_dir: Path,
        retention_days: int,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        if retention_days < 1:
            raise WormError("Object Lock retention must be at least a day", reason="bad-config")
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._log_dir = log_dir
        self._retention = dt.timedelta(days=retention_days)
        self._clock = clock

    @classmethod
    def from_boto3(
        cls, *, bucket: str, prefix: str, log_dir: Path, retention_days: int
    ) -> ObjectLockReplica:
        """A replica on boto3's default credentials (boto3 is not a liveward dependency)."""
        try:
            import boto3
        except ImportError as exc:
            raise WormError("the S3 replica needs boto3 installed", reason="bad-config") from exc
        return cls(
            boto3.client("s3"),
            bucket=bucket,
            prefix=prefix,
            log_dir=log_dir,
            retention_days=retention_days,
        )

    def key_of(self, path: Path) -> str:
        relative = path.relative_to(self._log_dir).as_posix()
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def put(self, path: Path) -> None:
        """Upload one sealed file, locked; WormError(replica-failed) if S3 does not take it."""
        body = path.read_bytes()
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.key_of(path),
                Body=body,
                ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=self._clock() + self._retention,
            )
        except Exception as exc:  # botocore raises many types; all mean "not stored"
            raise WormError(
                f"s3://{self.bucket}/{self.key_of(path)}: {exc}", reason="replica-failed"
            ) from exc

    def sync(self, paths: Sequence[Path]) -> None:
        """Upload the sealed files the bucket does not hold yet."""
        stored = self._stored_keys()
        for path in paths:
            if self.key_of(path) not in stored:
                self.put(path)

    def _stored_keys(self) -> set[str]:
        keys: set[str] = set()
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        try:
            while True:
                page = self._client.list_objects_v2(**request)
                keys.update(item["Key"] for item in page.get("Contents", []))
                if not page.get("IsTruncated"):
                    return keys
                request["ContinuationToken"] = page["NextContinuationToken"]
        except Exception as exc:  # as in put: any failure means we do not know what S3 holds
            raise WormError(
                f"listing s3://{self.bucket}/{self.prefix}: {exc}", reason="replica-failed"
            ) from exc
