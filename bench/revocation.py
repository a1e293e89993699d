"""Revocation latency: from the revocation request until a separate process enforces it.

The probe (`python -m bench.revocation probe`) is an ordinary process embedding the
enforcement library; it prints one JSON line per revocation-list change with the wall
clock it saw it at. The bench submits revocations and pairs each with the probe's line.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from liveward.settings import Settings, load_settings
from services.access.revocation import RevocationEnforcer
from streams.events import RevocationListEntry
from streams.meta import now_ms


@dataclass(frozen=True, slots=True)
class LatencyFigures:
    """Milliseconds from submission to enforcement, over `samples` revocations."""

    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def probe_main() -> None:
    """Follow the revocation list; print a line per change: {"key", "seen_ms", "tombstone"}."""
    settings = load_settings()

    def emit(key: str, entry: RevocationListEntry | None) -> None:
        line = {"key": key, "seen_ms": now_ms(), "tombstone": entry is None}
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
        sys.stdout.flush()

    enforcer = RevocationEnforcer(settings, on_change=emit)
    enforcer.start()
    enforcer.wait_ready(60)
    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    try:
        while sys.stdin.readline():
            pass  # runs until the bench closes our stdin
    finally:
        enforcer.close()


class Probe:
    """A probe process and a thread collecting what it saw."""

    def __init__(self, settings: Settings) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.revocation", "probe"],
            env={**os.environ, **settings.as_env()},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.seen: dict[str, int] = {}
        self._ready = threading.Event()
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            record = orjson.loads(line)
            if record.get("ready"):
                self._ready.set()
            elif not record["tombstone"]:
                self.seen.setdefault(record["key"], record["seen_ms"])

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def wait_for(self, key: str, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if key in self.seen:
                return self.seen[key]
            time.sleep(0.001)
        return None

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def measure(
    probe: Probe,
    submit: Callable[[str], str],
    count: int,
    *,
    interval_s: float = 0.05,
    timeout_s: float = 10.0,
    warmup: int = 3,
) -> LatencyFigures:
    """Submit count revocations one after another; submit(subject) returns the list key.

    The first `warmup` ones are not counted: they pay for connections a running service
    has long made (producer id, metadata).
    """
    latencies: list[float] = []
    for i in range(-warmup, count):
        subject = f"bench-{os.getpid()}-{time.time_ns()}-{i}"
        started = now_ms()
        key = submit(subject)
        seen = probe.wait_for(key, timeout_s)
        if seen is None:
            raise TimeoutError(f"revocation {key} not enforced within {timeout_s}s")
        if i >= 0:
            latencies.append(float(seen - started))
        time.sleep(interval_s)
    return LatencyFigures(
        samples=count,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies),
    )


if __name__ == "__main__" and sys.argv[1:] == ["probe"]:
    probe_main()
