"""hls.js in Chromium plays the encrypted live stream, stops when revoked, survives a region.

Each scenario prints its figures (start time, rotations, stalls, revocation-to-stop,
switch time); the README's "Measured figures" quote them.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Page

from liveward.topology import pathways
from tests.browser.conftest import KEY_PERIOD_S, Live, save_artifact, wait_for
from tests.browser.probe import PICTURE_SPREAD_JS, PlaybackProbe

PLAYING = "window.lwPlayer && window.lwPlayer.state === 'playing'"
START_TIMEOUT_S = 45.0
# "No dropped frames beyond a handful" over the scenario.
MAX_DROPPED_FRAMES = 10


def _region_of(live: Live, url: str | None) -> str | None:
    if url is None:
        return None
    port = urlsplit(url).port
    return next((p.region for p in pathways(live.settings) if p.edge_port == port), None)


def _start(page: Page, live: Live, viewer: str) -> tuple[PlaybackProbe, float]:
    """Open the player as `viewer`; the probe and the seconds from load to first frame."""
    opened = time.monotonic()
    page.goto(live.player_url(viewer))
    wait_for(page, PLAYING, START_TIMEOUT_S, "playback start")
    started_s = time.monotonic() - opened
    probe = PlaybackProbe(page)
    probe.sample()
    return probe, started_s


def test_playback_advances_across_key_rotations(live: Live, page: Page) -> None:
    probe, started_s = _start(page, live, "browser-viewer-play")
    first_keys = probe.samples[-1].values["keys"]
    # At least 20 s of playback and two new keys (two rotations at 10-s periods).
    last = probe.watch(
        60.0,
        until=lambda s: s.values["keys"] >= first_keys + 2 and probe.advanced_s() >= 20.0,
    )
    advanced = probe.advanced_s()
    rotations = last.values["keys"] - first_keys
    stall = probe.longest_stall_s()
    spread = page.evaluate(PICTURE_SPREAD_JS)
    save_artifact("playback.png", page.locator("video").screenshot())
    print(
        f"\nplayer start {started_s:.1f} s; played {advanced:.1f} s across {rotations} key "
        f"rotations ({last.values['keys']} keys); dropped {last.values['dropped']} of "
        f"{last.values['decoded']} frames; longest stall {stall:.1f} s; picture spread {spread:.0f}"
    )
    assert advanced >= 20.0
    assert rotations >= 2
    assert last.values["dropped"] <= MAX_DROPPED_FRAMES
    assert last.values["keyErrors"] == []
    assert stall < 1.0
    assert spread > 10.0, "the decoded picture is flat (black or grey): nothing was decoded"


def test_revoked_viewer_stops_within_a_key_period_plus_the_buffer(live: Live, page: Page) -> None:
    viewer = "browser-viewer-revoked"
    probe, _ = _start(page, live, viewer)
    probe.watch(3.0)
    buffered = probe.sample().values["buffered"]
    revoked_at = time.time()
    answer = httpx.post(
        f"{live.console.url}/api/actions/revoke-viewer", json={"viewer_id": viewer}, timeout=10
    )
    assert answer.status_code < 300, answer.text
    last = probe.watch(
        KEY_PERIOD_S + buffered + 30.0,
        until=lambda s: s.values["state"] in ("stopped", "error"),
    )
    # Let the buffer under the old key run out, then find when the picture froze.
    probe.watch(3.0)
    stopped_at = probe.last_advance_at()
    assert stopped_at is not None
    to_stop = stopped_at - revoked_at
    refusals = [e for e in last.values["keyErrors"] if e.get("status") == 403]
    print(
        f"\nrevocation to stop {to_stop:.1f} s (key period {KEY_PERIOD_S} s, "
        f"{buffered:.1f} s buffered at the call); refusal: {refusals[:1]}; "
        f"player says {last.values['state']}: {last.values['reason']}"
    )
    assert last.values["state"] == "stopped"
    assert refusals, "the key server did not refuse with 403 (or the page could not read it)"
    assert last.values["reason"], "the page does not say why it stopped"
    # ... and shows it to the person watching.
    shown = page.locator(f'#key-refusals li[data-reason="{last.values["reason"]}"]')
    assert shown.count() >= 1, page.inner_html("body")[:2000]
    assert to_stop <= KEY_PERIOD_S + buffered + 4.0


def test_a_key_refusal_is_readable_across_origins(live: Live, page: Page) -> None:
    """No token, a forged one: 401 with the reason, readable by the page (CORS on 4xx)."""
    page.goto(live.console.url)
    license_url = live.system.of("license")[0].url
    period = int(time.time()) // KEY_PERIOD_S
    answers = page.evaluate(
        """async ([url, forged]) => {
          const out = [];
          for (const headers of [{}, {Authorization: 'Bearer ' + forged}]) {
            const r = await fetch(url, {headers});
            out.push({status: r.status, body: await r.json()});
          }
          return out;
        }""",
        [f"{license_url}/v1/keys/match-of-the-day/{period}", "e30.e30.c2ln"],
    )
    print(f"\nkey refusals seen by the page: {answers}")
    assert [a["status"] for a in answers] == [401, 401]
    assert all(a["body"].get("error") for a in answers)


def test_console_shows_every_region(live: Live, page: Page) -> None:
    page.goto(live.console.url)
    up = "['serving', 'standby']"
    for region in live.settings.regions[:2]:
        wait_for(
            page,
            f"(() => {{ const e = document.querySelector('[data-region=\"{region}\"]'); "
            f"return e && {up}.includes(e.dataset.state); }})()",
            30.0,
            f"region {region} shown as up (serving or standby)",
        )
    wait_for(
        page,
        "document.querySelectorAll('[data-region][data-state=\"serving\"]').length === 1",
        10.0,
        "exactly one region shown leading",
    )
    save_artifact("console.png", page.screenshot(full_page=True))


def test_region_loss_moves_the_player_without_a_stall(live: Live, page: Page) -> None:
    console = page.context.new_page()
    console.goto(live.console.url)
    probe, _ = _start(page, live, "browser-viewer-failover")
    probe.watch(6.0)
    serving = _region_of(live, probe.samples[-1].values["lastFragment"])
    assert serving is not None, probe.samples[-1].values
    decisions_before = console.evaluate("document.querySelectorAll('#decisions li').length")
    killed_at = time.time()
    answer = httpx.post(
        f"{live.console.url}/api/actions/kill-region", json={"region": serving}, timeout=10
    )
    assert answer.status_code < 300, answer.text
    last = probe.watch(
        30.0,
        until=lambda s: (
            _region_of(live, s.values["lastFragment"]) not in (None, serving)
            and time.time() - killed_at > 10.0
        ),
    )
    moved = next(
        (
            s.at - killed_at
            for s in probe.samples
            if s.at >= killed_at and _region_of(live, s.values["lastFragment"]) != serving
        ),
        None,
    )
    stall = probe.longest_stall_s(since=killed_at)
    print(
        f"\nregion {serving} killed: player on {_region_of(live, last.values['lastFragment'])} "
        f"after {moved if moved is None else round(moved, 1)} s; longest stall {stall:.1f} s"
    )
    assert moved is not None, "the player never fetched from the other region"
    assert moved <= 10.0
    assert stall <= 3.0
    # The console shows the loss and the failover decision.
    wait_for(
        console,
        f"document.querySelector('[data-region=\"{serving}\"]').dataset.state !== 'serving'",
        20.0,
        f"the console showing {serving} out of service",
    )
    wait_for(
        console,
        f"document.querySelectorAll('#decisions li').length > {decisions_before}",
        20.0,
        "a failover decision on the console",
    )
    save_artifact("console-after-failover.png", console.screenshot(full_page=True))
