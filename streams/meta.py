"""Event ids and wall-clock stamps, taken at the edges (pure logic gets them as arguments)."""

import time
import uuid


def new_event_id() -> str:
    return str(uuid.uuid4())


def now_ms() -> int:
    """Wall-clock time as epoch milliseconds."""
    return time.time_ns() // 1_000_000
