"""How a media process lives: until SIGTERM/SIGINT, or until its optional lifetime runs out.

A lifetime bounds processes a test or drill started, so none outlives a crashed runner.
"""

from __future__ import annotations

import os
import signal
import threading
import time


class Lifetime:
    """A stop flag set by SIGTERM/SIGINT or when lifetime_s has passed since start."""

    def __init__(self, lifetime_s: float | None = None) -> None:
        self.stop = threading.Event()
        self.deadline = None if lifetime_s is None else time.monotonic() + lifetime_s

    def install_signals(self) -> None:
        """Let SIGTERM and SIGINT end the process's loop (call from the main thread)."""

        def _stop(_signum: int, _frame: object) -> None:
            self.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def alive(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.stop.set()
        return not self.stop.is_set()

    def wait(self, seconds: float) -> None:
        self.stop.wait(max(0.0, seconds))

    def terminate_self_at_deadline(self) -> None:
        """For servers that handle signals themselves (uvicorn): SIGTERM this process at the
        deadline, so they shut down the way they do when stopped."""
        deadline = self.deadline
        if deadline is None:
            return

        def _expire() -> None:
            if not self.stop.wait(max(0.0, deadline - time.monotonic())):
                os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=_expire, name="lifetime", daemon=True).start()
