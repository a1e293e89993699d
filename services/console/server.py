"""Start and stop the console inside a host process (`liveward run`, a test): uvicorn on a
thread, beside the feed that follows Kafka and probes the CDN edges."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

from liveward.settings import Settings
from services.console.actions import ConsoleActions
from services.console.app import create_console_app
from services.console.errors import ConsoleNotStarted
from services.console.feed import ConsoleFeed
from services.console.tokens import ViewerTokens

if TYPE_CHECKING:
    from infra.live_system import LiveSystem

START_TIMEOUT_S = 15.0


@dataclass(slots=True)
class ConsoleHandle:
    """A running console: its URL, its feed (the folded state), and how to stop it."""

    url: str
    feed: ConsoleFeed
    _server: uvicorn.Server
    _thread: threading.Thread
    _tokens: ViewerTokens

    def stop(self) -> None:
        """Stop serving (open requests get a moment to finish), then the feed."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.feed.stop()
        self._tokens.close()

    def __enter__(self) -> ConsoleHandle:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_console(
    settings: Settings,
    system: LiveSystem | None = None,
    *,
    actions: ConsoleActions | None = None,
    port: int | None = None,
    viewer_ip: str | None = None,
    history_s: float = 600.0,
) -> ConsoleHandle:
    """Serve the console on `services.host:port` (default `services.console_port`; 0 picks a
    free port) until `stop()`. Actions go to `actions`, or to the regions, auth service and
    keys of `system`. `viewer_ip` fixes the address the player's tokens are bound to
    (default: the browser's address as the console sees it). Raises ConsoleNotStarted when
    the port is taken."""
    if actions is None:
        if system is None:
            raise ValueError("start_console needs a system or actions")
        from services.console.system_actions import SystemActions

        actions = SystemActions(settings, system)
    auth_url = None
    if system is not None and system.of("auth"):
        auth_url = system.of("auth")[0].url
    feed = ConsoleFeed(settings, history_s=history_s)
    tokens = ViewerTokens(settings, auth_url=auth_url, viewer_ip=viewer_ip)
    app = create_console_app(
        settings, snapshot=feed.snapshot, actions=actions, tokens=tokens, ready=feed.ready
    )
    host = settings.services.host
    config = uvicorn.Config(
        app,
        host=host,
        port=settings.services.console_port if port is None else port,
        access_log=False,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    feed.start()
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            feed.stop()
            tokens.close()
            raise ConsoleNotStarted(
                f"the console could not listen on {host}:{config.port} (is the port taken?)"
            )
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return ConsoleHandle(f"http://{host}:{bound}", feed, server, thread, tokens)
