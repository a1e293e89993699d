"""An in-memory RecordLog: what tests and the fuzzer give the bridge instead of Kafka."""

from __future__ import annotations

import threading
from collections.abc import Sequence


class InMemoryRecordLog:
    """Keeps every (topic, key, value) it is sent; can be told to fail the next sends.

    `refuse_with` makes every send raise that exception (and store nothing) until it is
    set back to None, the way a full producer queue or an unreachable broker would.
    """

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []
        self.refuse_with: Exception | None = None
        self._lock = threading.Lock()

    def send_counted(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes | None]],
        *,
        timeout: float = 30.0,
    ) -> int:
        with self._lock:
            if self.refuse_with is not None:
                raise self.refuse_with
            self.records.extend((topic, key, value) for key, value in records)
            return len(records)
