"""Errors of the key hierarchy; every one carries a machine-readable reason code."""

from __future__ import annotations

from liveward.errors import LivewardError


class KeyHierarchyError(LivewardError):
    """Root of every error in services/keys (named so it never shadows the builtin KeyError).

    Reason codes: `bad-period`, `bad-content-id`, `bad-key-id`, `bad-master-key`,
    `no-epoch`, `epoch-unavailable`, `period-length-change`, and the `UnwrapFailed` and
    `KekKeyringError` ones.
    """

    reason = "key-hierarchy-error"


class UnwrapFailed(KeyHierarchyError):
    """A wrapped epoch master key cannot be unwrapped here.

    Reasons: `no-copy-for-region` (the epoch carries no copy for this region),
    `wrong-region-kek` (the copy names another region's KEK), `unknown-kek` (a KEK version
    this keyring does not hold), `unwrap-failed` (authentication failed: wrong key, a
    tampered copy or tampered epoch fields bound into it).
    """

    reason = "unwrap-failed"


class KekKeyringError(KeyHierarchyError):
    """A region's KEK keyring file cannot be read, parsed or written (`kek-keyring`)."""

    reason = "kek-keyring"
