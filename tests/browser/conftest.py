"""The real-player acceptance suite: hls.js in Debian's Chromium against the live system.

One live system for the module (real Kafka, the worker, auth and license services, two
regions with ffmpeg encoders and packagers, steering, the bridge, key rotation every 10 s,
the console), one Chromium for the session, a fresh page per scenario. Chromium is
Debian's (`/usr/bin/chromium`, installed by infra/setup.sh), driven by Playwright through
`executable_path`; Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from infra.live_system import LiveSystem, live_system, with_demo_geo
from liveward.settings import (
    AuthSettings,
    KafkaSettings,
    KeySettings,
    MediaSettings,
    ServiceSettings,
    Settings,
    load_settings,
)
from liveward.topology import pathways
from services.console.server import ConsoleHandle, start_console

HERE = Path(__file__).resolve().parent
PORT_OFFSET = int(os.environ.get("LIVEWARD_TEST_PORT_OFFSET", "0"))
CHROMIUM = Path("/usr/bin/chromium")
# What MEDIA-NOTES found to work for headless Chromium as root on these machines.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]
CONTENT = "match-of-the-day"
KEY_PERIOD_S = 10
ARTIFACTS = Path(os.environ.get("LIVEWARD_TEST_ARTIFACTS", "test-artifacts")) / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


def _port(port: int) -> int:
    return port + PORT_OFFSET


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, with a throw-away home and profile; for one module
    only: Playwright's sync API keeps an event loop running in the main thread while it
    is open, and later tests run asyncio themselves."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run infra/setup.sh (apt-get install chromium)")
    home = Path(tempfile.mkdtemp(prefix="liveward-chromium-"))
    # Chromium writes crash and audio state into $HOME: its own environment points that
    # at a throw-away folder (the test process's own HOME, and so ~/.cache, is untouched).
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home),
        "XDG_CACHE_HOME": str(home),
    }
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, env=env
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Live:
    settings: Settings
    system: LiveSystem
    console: ConsoleHandle

    def player_url(self, viewer: str) -> str:
        return f"{self.console.url}/player?viewer={viewer}&content={CONTENT}"


def browser_settings(state_dir: Path) -> Settings:
    base = load_settings(
        state_dir=state_dir,
        kafka=KafkaSettings(port=_port(20092), controller_port=_port(20093)),
        services=ServiceSettings(
            console_port=_port(20080),
            auth_port=_port(20081),
            bridge_port=_port(20083),
            steering_port=_port(20084),
            license_port=_port(20090),  # one per region: 20090, 20190
            license_grpc_port=_port(20095),
        ),
        keys=KeySettings(period_seconds=KEY_PERIOD_S),
        media=MediaSettings(
            source="ffmpeg", origin_port_base=_port(20200), edge_port_base=_port(20210)
        ),
        auth=AuthSettings(),
    )
    policy = Path(str(files("services.access") / "policies" / "local-viewer.toml"))
    return with_demo_geo(base, state_dir / "demo-geo", policy)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The whole system with real media, key rotation and the console, for one module."""
    settings = browser_settings(tmp_path_factory.mktemp("browser-live"))
    regions = tuple(settings.regions[:2])
    with live_system(
        settings,
        auth_regions=regions[:1],
        license_regions=regions,
        media_regions=regions,
        steering=True,
        bridge=True,
        key_rotation=(CONTENT,),
    ) as system:
        _wait_for_a_full_window(settings)
        console = start_console(settings, system)
        try:
            yield Live(settings, system, console)
        finally:
            console.stop()


def _wait_for_a_full_window(settings: Settings, timeout_s: float = 60.0) -> None:
    """Until every edge lists a full live window with no discontinuity: regions are
    "ready" with a few segments, and a player started in the encoders' first seconds
    may meet their start-up restarts (seen once in CI: hls.js stuck loading)."""
    full = settings.media.playlist_segments
    deadline = time.monotonic() + timeout_s
    for pathway in pathways(settings):
        url = f"http://{settings.services.host}:{pathway.edge_port}/live/{CONTENT}/media.m3u8"
        while True:
            try:
                text = httpx.get(url, timeout=2.0).text
            except httpx.HTTPError:
                text = ""
            if text.count("#EXTINF") >= full and "#EXT-X-DISCONTINUITY\n" not in text:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"{url} never listed a full window:\n{text}")
            time.sleep(0.5)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", lambda message: print(f"[page {message.type}] {message.text}"))
    try:
        yield page
    finally:
        context.close()


def save_artifact(name: str, data: bytes) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(data)
    print(f"artifact: {path.resolve()}", file=sys.stderr)
    return path


def wait_for(page: Page, expression: str, timeout_s: float, what: str) -> None:
    """Poll a JS expression until it is truthy; fail with `what` and the player's state."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        time.sleep(0.2)
    state = page.evaluate("JSON.stringify(window.lwPlayer || null)")
    pytest.fail(f"{what} not within {timeout_s:.0f}s; lwPlayer = {state[:2000]}")
