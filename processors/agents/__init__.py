"""Faust agents, one module per derived state; each only decodes, calls pure logic, and sends."""

from __future__ import annotations

import faust

from liveward.settings import Settings


def register_all(app: faust.App, settings: Settings) -> None:
    from processors.agents import control, qoe, revocations, theft

    revocations.register(app, settings)
    theft.register(app, settings)
    control.register(app, settings)
    qoe.register(app, settings)
