"""ffmpeg children of a media wrapper: started so they die with it, stopped by their PID.

A region kill SIGKILLs the wrappers by PID; their ffmpeg children must not live on
encoding or packaging for nobody. Each child asks the kernel for SIGKILL when its parent
dies (`PR_SET_PDEATHSIG`), and the wrapper terminates it in its own `finally`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import IO

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 3.0
# Loaded here, not in the forked child: dlopen after fork in a threaded process can hang.
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)
    # The parent may have died between fork and prctl: then nobody would kill us.
    if os.getppid() == 1:
        os._exit(0)


def start_child(
    argv: Sequence[str], *, stdin: int | IO[bytes] | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """Start argv as a child that gets SIGKILL when this process dies; its output goes to
    this process's stderr (the wrapper's log)."""
    # preexec_fn runs between fork and exec next to the wrapper's Kafka threads; it only
    # makes two system calls through an already loaded libc, taking no lock they hold.
    return subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=None,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )


def stop_child(child: subprocess.Popen[bytes] | None, *, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the child, SIGKILL it after timeout, and reap it."""
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("ffmpeg %d ignored SIGTERM; killing it", child.pid)
        child.kill()
        child.wait()
