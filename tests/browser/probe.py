"""What a scenario reads off the page: the video element's clock and the player's record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from playwright.sync_api import Page

# One evaluation per sample: the video's clock and quality, and lwPlayer's record.
SAMPLE_JS = """() => {
  const v = document.querySelector('video');
  const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  const p = window.lwPlayer || {};
  const frags = p.fragments || [];
  return {
    time: v ? v.currentTime : 0,
    paused: v ? v.paused : true,
    dropped: q ? q.droppedVideoFrames : 0,
    decoded: q ? q.totalVideoFrames : 0,
    state: p.state || null,
    reason: p.reason || null,
    keys: (p.keyUris || []).length,
    keyErrors: p.keyErrors || [],
    lastFragment: frags.length ? frags[frags.length - 1].url : null,
    buffered: v && v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0,
  };
}"""

# The decoded picture's luma spread (testsrc2 is colourful; a black or frozen-grey frame
# is not). The video is fed through MediaSource, so the canvas is not tainted.
PICTURE_SPREAD_JS = """() => {
  const v = document.querySelector('video');
  const c = document.createElement('canvas');
  c.width = 160; c.height = 90;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sq = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) {
    const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
    sum += y; sq += y * y; n++;
  }
  const mean = sum / n;
  return Math.sqrt(Math.max(0, sq / n - mean * mean));
}"""


@dataclass(slots=True)
class Sample:
    at: float  # wall clock, epoch seconds
    values: dict[str, Any]

    @property
    def media_time(self) -> float:
        return float(self.values["time"])


@dataclass(slots=True)
class PlaybackProbe:
    """Samples a page every `every_s`; answers how far playback advanced and how it stalled."""

    page: Page
    every_s: float = 0.2
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> Sample:
        taken = Sample(time.time(), self.page.evaluate(SAMPLE_JS))
        self.samples.append(taken)
        return taken

    def watch(self, seconds: float, *, until: Any = None) -> Sample:
        """Sample for `seconds`, or until `until(sample)` is true; the last sample."""
        deadline = time.monotonic() + seconds
        last = self.sample()
        while time.monotonic() < deadline and not (until is not None and until(last)):
            time.sleep(self.every_s)
            last = self.sample()
        return last

    def advanced_s(self, since: float | None = None) -> float:
        """Media seconds played since wall time `since` (default: the first sample)."""
        window = [s for s in self.samples if since is None or s.at >= since]
        return window[-1].media_time - window[0].media_time if len(window) > 1 else 0.0

    def longest_stall_s(self, since: float | None = None, until: float | None = None) -> float:
        """The longest wall-clock stretch in which the media clock did not move (less one
        sampling interval, so steady playback reads as 0)."""
        window = [
            s
            for s in self.samples
            if (since is None or s.at >= since) and (until is None or s.at <= until)
        ]
        longest = 0.0
        still_since: float | None = None
        for previous, current in pairwise(window):
            if current.media_time > previous.media_time + 1e-3:
                if still_since is not None:
                    longest = max(longest, previous.at - still_since)
                    still_since = None
            elif still_since is None:
                still_since = previous.at
        if still_since is not None and window:
            longest = max(longest, window[-1].at - still_since)
        return max(0.0, longest - self.every_s) if longest else 0.0

    def last_advance_at(self) -> float | None:
        """Wall time of the last sample in which the media clock had moved."""
        moved = None
        for previous, current in pairwise(self.samples):
            if current.media_time > previous.media_time + 1e-3:
                moved = current.at
        return moved
