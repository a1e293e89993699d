"""Errors of the license log: one root, `WormError`, with a stable reason code per failure."""

from __future__ import annotations

from sinks.errors import SinkError


class WormError(SinkError):
    """Root of every error in sinks/worm/; `reason` says what failed, machine-readably."""

    reason = "worm-error"


class ProofError(WormError):
    """A Merkle proof does not prove what it claims (or cannot be built for those sizes)."""

    reason = "bad-proof"


class CheckpointError(WormError):
    """A checkpoint is malformed, carries a bad signature, or names another log."""

    reason = "bad-checkpoint"


class LogCorrupt(WormError):
    """The files on disk contradict themselves or their signed checkpoints."""

    reason = "log-corrupt"


class SigningKeyError(WormError):
    """The log's signing or verification key is missing or unreadable."""

    reason = "signing-key"
