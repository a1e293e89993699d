"""Errors raised while starting, checking or stopping the local stack."""

from liveward.errors import LivewardError


class StackError(LivewardError):
    """The local stack could not be started, checked or stopped."""

    reason = "stack-error"


class PortInUse(StackError):
    """A port the stack needs is already bound by another process."""

    reason = "port-in-use"


class MissingPrerequisite(StackError):
    """A tool the stack needs (JDK, Maven, clickhouse-server) is not installed."""

    reason = "missing-prerequisite"


class NotReady(StackError):
    """A service started but did not become ready in time."""

    reason = "not-ready"
