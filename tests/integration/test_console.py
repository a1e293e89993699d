"""The web console against the real system: two simulated regions, the worker's control plane,
the auth service and the key hierarchy. `/api/state` must show what really happened, and the
actions must really happen (a region dies, a viewer is revoked, keys rotate).

One system for the module, started by `live_system` on ports of its own, as `liveward run`
starts it; the console is started in process the way `liveward run` does, on a free port.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.drills.key_leak import VIEWER_IP
from infra.live_system import LiveSystem, live_system, with_demo_geo
from liveward.settings import (
    ConsoleSettings,
    KafkaSettings,
    MediaSettings,
    ServiceSettings,
    Settings,
    load_settings,
)
from services.console.server import ConsoleHandle, start_console

REGIONS = ("eu-west", "us-east")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, port_offset: int) -> Settings:
    state = tmp_path_factory.mktemp("console")
    base = load_settings(
        state_dir=state,
        kafka=KafkaSettings(port=19892 + port_offset, controller_port=19893 + port_offset),
        services=ServiceSettings(
            auth_port=18881 + port_offset,
            license_port=18891 + port_offset,
            license_grpc_port=18901 + port_offset,
            steering_port=18884 + port_offset,
        ),
        media=MediaSettings(
            origin_port_base=18910 + port_offset, edge_port_base=18920 + port_offset
        ),
        console=ConsoleSettings(viewer_id="console-test-viewer"),
    )
    settings = with_demo_geo(base, Path(state) / "geo")
    auth = settings.auth.model_copy(update={"trusted_proxies": ("127.0.0.1/32",)})
    return settings.model_copy(update={"auth": auth})


@pytest.fixture(scope="module")
def system(settings: Settings) -> Iterator[LiveSystem]:
    with live_system(settings, auth_regions=REGIONS[:1], media_regions=REGIONS) as running:
        yield running


@pytest.fixture(scope="module")
def console(settings: Settings, system: LiveSystem) -> Iterator[ConsoleHandle]:
    handle = start_console(settings, system, port=0, viewer_ip=VIEWER_IP)
    try:
        yield handle
    finally:
        handle.stop()


def state_of(console: ConsoleHandle) -> dict[str, Any]:
    answer = httpx.get(f"{console.url}/api/state", timeout=5)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def await_state(
    console: ConsoleHandle, what: str, check: Callable[[dict[str, Any]], bool], timeout: float
) -> tuple[dict[str, Any], float]:
    """The first /api/state for which `check` holds, and how long it took to come."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        state = state_of(console)
        if check(state):
            return state, time.monotonic() - began
        if time.monotonic() > deadline:
            regions = {r["name"]: r["state"] for r in state["regions"]}
            pytest.fail(f"{what} not seen within {timeout:g} s; regions {regions}")
        time.sleep(0.25)


def regions(state: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r["state"] for r in state["regions"]}


def post(console: ConsoleHandle, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{console.url}{path}", json=body, timeout=60)


def test_the_console_serves_its_pages_and_hlsjs(console: ConsoleHandle) -> None:
    page = httpx.get(console.url, timeout=5)
    assert page.status_code == 200 and 'id="decisions"' in page.text
    hlsjs = httpx.get(f"{console.url}/vendor/hls.min.js", timeout=5)
    assert hlsjs.status_code == 200 and len(hlsjs.content) > 100_000


def test_every_region_and_cdn_is_shown_up_with_one_serving(console: ConsoleHandle) -> None:
    state, took = await_state(
        console,
        "both regions up, one serving",
        lambda s: (
            sorted(regions(s).values()) == ["serving", "standby"]
            and all(c["state"] == "up" for r in s["regions"] for c in r["cdns"])
            # The edges are probed at once; the sources' beats come through Kafka.
            and {"ingest", "packager", "origin"}
            <= {source["role"] for source in s["regions"][0]["sources"]}
        ),
        timeout=30,
    )
    print(f"console showed both regions up {took:.1f} s after asking")
    assert [r["name"] for r in state["regions"]] == list(REGIONS)
    roles = {s["role"] for s in state["regions"][0]["sources"]}
    assert {"ingest", "packager", "origin"} <= roles


def test_a_token_for_the_player_is_renewed_then_refused_once_the_viewer_is_revoked(
    console: ConsoleHandle,
) -> None:
    first = post(console, "/api/token", {})
    assert first.status_code == 200, first.text
    again = post(console, "/api/token", {})
    # A page loaded twice stays one stream: the kept session is renewed.
    assert again.json()["session_id"] == first.json()["session_id"]

    revoked = post(console, "/api/actions/revoke-viewer", {})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["outcome"]["viewer_id"] == "console-test-viewer"
    renewal = post(console, "/api/token", {"renew": again.json()["token"]})
    assert renewal.status_code == 401
    assert renewal.json()["error"] in {"viewer-revoked", "session-version-stale"}
    # Signing in again after the revocation is allowed: a new session.
    fresh = post(console, "/api/token", {})
    assert fresh.status_code == 200
    assert fresh.json()["session_id"] != first.json()["session_id"]

    await_state(
        console,
        "the viewer revocation",
        lambda s: any(
            r["scope"] == "viewer" and r["reason"] == "console" for r in s["revocations"]
        ),
        timeout=15,
    )


def test_a_refused_token_says_why(settings: Settings, system: LiveSystem) -> None:
    # Without a fixed viewer address the browser's own (loopback) is used: the policy
    # refuses private addresses, and the page is told so.
    with start_console(settings, system, port=0) as bare:
        answer = post(bare, "/api/token", {"viewer_id": "someone-else"})
    assert (answer.status_code, answer.json()["error"]) == (403, "private-address")


def test_an_emergency_rotation_appears_as_a_new_epoch(console: ConsoleHandle) -> None:
    answer = post(console, "/api/actions/rotate-keys", {})
    assert answer.status_code == 200, answer.text
    epochs = answer.json()["outcome"]["epochs"]
    assert len(epochs) == 1
    await_state(
        console,
        "the emergency epoch",
        lambda s: any(
            r["kind"] == "emergency-epoch" and r["epoch_id"] == epochs[0] for r in s["rotations"]
        ),
        timeout=15,
    )


def test_killing_a_region_shows_it_down_with_the_failover_and_restoring_brings_it_back(
    console: ConsoleHandle,
) -> None:
    state, _ = await_state(
        console, "a serving region", lambda s: "serving" in regions(s).values(), timeout=30
    )
    serving = next(name for name, judged in regions(state).items() if judged == "serving")
    other = next(name for name in REGIONS if name != serving)
    known = {d["decision_id"] for d in state["decisions"]}

    killed = post(console, "/api/actions/kill-region", {"region": serving})
    assert killed.status_code == 200, killed.text
    assert "origin" in killed.json()["outcome"]["killed"]

    state, took = await_state(
        console,
        f"{serving} down and a failover away from it",
        lambda s: (
            regions(s) == {serving: "down", other: "serving"}
            and any(
                d["decision_id"] not in known and d["from"].startswith(f"{serving}.")
                for d in s["decisions"]
            )
        ),
        timeout=20,
    )
    print(f"console showed the failover {took:.1f} s after the kill")
    assert state["decisions"][0]["decided_at"] >= max(
        (d["decided_at"] for d in state["decisions"]), default=0
    )
    assert all(c["state"] == "down" for c in state["regions"][REGIONS.index(serving)]["cdns"])

    restored = post(console, "/api/actions/restore-region", {"region": serving})
    assert restored.status_code == 200, restored.text
    assert "origin" in restored.json()["outcome"]["started"]
    await_state(console, f"{serving} back up", lambda s: regions(s)[serving] != "down", timeout=45)


def test_actions_on_unknown_regions_are_refused(console: ConsoleHandle) -> None:
    answer = post(console, "/api/actions/kill-region", {"region": "ap-south"})
    assert (answer.status_code, answer.json()["error"]) == (404, "unknown-region")
