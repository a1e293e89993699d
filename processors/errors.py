"""Errors raised by the stream processors' pure logic."""

from liveward.errors import LivewardError


class ProcessorError(LivewardError):
    """Root of every error in processors/."""

    reason = "processor-error"
