"""Errors raised while mapping, buffering and writing events to a sink."""

from liveward.errors import LivewardError


class SinkError(LivewardError):
    """Root of every error in sinks/."""

    reason = "sink-error"


class SinkBackpressure(SinkError):
    """The destination is down or slow: retry the same batch after `retry_after` seconds.

    Nothing was acknowledged: the batch stays buffered and its offsets uncommitted.
    """

    reason = "backpressure"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SinkWriteFailed(SinkError):
    """The destination refused a batch for a reason retrying will not fix."""

    reason = "write-failed"


class RecordRejected(SinkError):
    """One record cannot become a row (missing field, wrong type, out of range)."""

    reason = "record-rejected"


class ClickHouseUnavailable(SinkError):
    """ClickHouse did not answer, or answered that it is overloaded; worth retrying."""

    reason = "clickhouse-unavailable"


class ClickHouseQueryError(SinkError):
    """ClickHouse rejected a statement; retrying the same statement fails the same way."""

    reason = "clickhouse-query-error"


class MigrationError(SinkError):
    """The migration files are malformed, or one already applied was edited afterwards."""

    reason = "migration-error"
