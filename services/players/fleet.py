"""A fleet of simulated live players on one asyncio loop, and the CMCD telemetry they send.

Each player loads the multivariant playlist from the first entry URL that answers, polls
the steering manifest at its TTL, plays the first pathway in PATHWAY-PRIORITY that has not
failed lately, reloads the media playlist as HLS says, and fetches segments while its
buffer has room. A failed request (refused, timed out, an error status, a wrong segment)
or a playlist that stopped moving sends it to the next pathway at once. Every loop ends
by the fleet's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin

from liveward.settings import Settings
from liveward.topology import pathways, split_pathway
from services.media.encryption import decrypts_to_transport_stream, is_encrypted_segment
from services.media.errors import HttpFailure
from services.media.http11 import HttpClient
from services.media.layout import MASTER_PLAYLIST, live_path
from services.media.segments import DECLARED_BITRATE_BPS, is_segment_of
from services.players.cmcd import CmcdValue, Token, encode_cmcd, round_to
from services.players.errors import PlaylistError
from services.players.hls import (
    MediaPlaylist,
    Multivariant,
    parse_media_playlist,
    parse_multivariant,
    parse_steering_manifest,
)
from services.players.model import (
    PathwayChooser,
    Phase,
    Playback,
    SegmentLog,
    Switch,
    initial_priority,
    reload_delay,
    start_sequence,
)
from services.players.summary import FleetSummary, PlayerReport, summarize, time_to_region

Clock = Callable[[], float]
# After every pathway failed lately, wait this long before trying again.
ALL_FAILED_BACKOFF_S = 0.5
ENTRY_RETRY_S = 1.0
MIN_SLEEP_S = 0.005


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What the players play, for how long, and how patient they are."""

    entry_urls: tuple[str, ...]
    content_id: str
    count: int
    duration_s: float
    ramp_s: float = 1.0
    request_timeout_s: float = 2.0
    # How long a failed pathway is avoided (hls.js: 300 s; shorter so failback shows).
    penalty_s: float = 30.0
    # A media playlist that shows no new segment for this many target durations is stale.
    stale_after_targets: float = 2.0
    max_buffer_segments: int = 3
    startup_segments: float = 1.0
    resume_segments: float = 1.0
    # Steering poll interval until a manifest gives its TTL, and after a failed poll.
    steering_retry_s: float = 2.0
    bridge_url: str | None = None
    telemetry_flush_s: float = 1.0
    max_connections_per_host: int = 256
    # A playback token for encrypted (ffmpeg) media: the fleet then fetches each key once
    # and checks every segment's first block decrypts to MPEG-TS. Without one, encrypted
    # segments are checked by shape only (whole AES blocks).
    key_token: str | None = None


def entry_urls(settings: Settings, content_id: str) -> tuple[str, ...]:
    """The multivariant playlist on every edge, in pathway order (players try them in turn)."""
    host = settings.services.host
    return tuple(
        f"http://{host}:{p.edge_port}{live_path(content_id, MASTER_PLAYLIST)}"
        for p in pathways(settings)
    )


class RequestFailed(Exception):
    """A player request did not give what was needed; `reason` names why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class TelemetryStats:
    sent: int = 0
    refused: int = 0
    dropped: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "refused": self.refused,
            "dropped": self.dropped,
            "statuses": dict(self.statuses),
        }


class TelemetrySender:
    """Batches the fleet's CMCD payloads and posts them to the bridge as `text/cmcd` lines.

    Answers 429/503 put the batch back and pause for Retry-After; other refusals are
    counted. The queue is bounded: when the bridge cannot keep up the oldest go first.
    """

    def __init__(
        self,
        client: HttpClient,
        url: str,
        *,
        flush_s: float,
        max_batch: int = 2_000,
        max_queue: int = 100_000,
    ) -> None:
        self._client = client
        self._url = url
        self._flush_s = flush_s
        self._max_batch = max_batch
        self._queue: deque[str] = deque()
        self._max_queue = max_queue
        self.stats = TelemetryStats()

    def offer(self, payload: str) -> None:
        self._queue.append(payload)
        if len(self._queue) > self._max_queue:
            self._queue.popleft()
            self.stats.dropped += 1

    async def run(self, stop: asyncio.Event, *, final_flush_s: float = 5.0) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._flush_s)
            pause = await self._flush()
            if pause and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        deadline = time.monotonic() + final_flush_s
        while self._queue and time.monotonic() < deadline:
            pause = await self._flush()
            if pause:
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))

    async def _flush(self) -> float:
        """Send what is queued; the seconds to pause if the bridge asked for it."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            try:
                response = await self._client.request(
                    "POST",
                    self._url,
                    headers={"Content-Type": "text/cmcd"},
                    body="\n".join(batch).encode(),
                )
            except HttpFailure as exc:
                self.stats.statuses[exc.reason] += 1
                self._queue.extendleft(reversed(batch))
                return ENTRY_RETRY_S
            self.stats.statuses[str(response.status)] += 1
            if response.status in (429, 503):
                self._queue.extendleft(reversed(batch))
                retry_after = response.headers.get("retry-after", "1")
                return float(retry_after) if retry_after.isdigit() else 1.0
            if 200 <= response.status < 300:
                self.stats.sent += len(batch)
            else:
                self.stats.refused += len(batch)
        return 0.0


class SegmentKeys:
    """The AES-128 keys of encrypted segments, fetched once per key URI for the whole
    fleet with a playback token."""

    def __init__(self, client: HttpClient, token: str, timeout: float) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._keys: dict[str, asyncio.Task[bytes]] = {}

    async def key(self, uri: str) -> bytes:
        """The key behind uri; RequestFailed (`key-...`) when the license service refuses."""
        task = self._keys.get(uri)
        if task is None or (task.done() and task.exception() is not None):
            task = self._keys[uri] = asyncio.ensure_future(self._fetch(uri))
        return await asyncio.shield(task)

    async def _fetch(self, uri: str) -> bytes:
        try:
            response = await self._client.get(uri, headers=self._headers, timeout=self._timeout)
        except HttpFailure as exc:
            raise RequestFailed(f"key-{exc.reason}") from exc
        if response.status != 200 or len(response.body) != 16:
            raise RequestFailed(f"key-http-{response.status}")
        return response.body


class Player:
    """One simulated viewer."""

    def __init__(
        self,
        index: int,
        config: FleetConfig,
        client: HttpClient,
        telemetry: TelemetrySender | None,
        clock: Clock,
        keys: SegmentKeys | None = None,
    ) -> None:
        self.index = index
        self.config = config
        self.keys = keys
        # What CMCD `br` reports: the variant's declared bitrate once the master is read.
        self.bitrate_kbps = DECLARED_BITRATE_BPS // 1000
        self.client = client
        self.telemetry = telemetry
        self.clock = clock
        self.session_id = str(uuid.uuid4())
        # A raw viewer id, as a real player's app would send; the bridge pseudonymises it.
        self.viewer_id = f"sim-viewer-{index}"
        self.playback = Playback(0.0, 0.0, 0.0)
        self.segments = SegmentLog()
        self.switches: list[Switch] = []
        self.errors: Counter[str] = Counter()
        self.skipped = 0
        self.started_at = 0.0
        # Where the player is: pathway, its playlist, and when that playlist last moved.
        self.current: str | None = None
        self.chooser: PathwayChooser | None = None
        self.playlist: MediaPlaylist | None = None
        self.pathway_last_seq: int | None = None
        self.last_change_at = 0.0
        self.next_reload_at = 0.0
        self.next_seq: int | None = None
        # The newest segment of a playlist abandoned as stale: another pathway that is no
        # further along shares its stalled origin (a sibling CDN) and is skipped at once.
        self.stale_seq: int | None = None
        self.throughput_bps = 0.0
        self.sample_seq = 0
        self.starved = False
        self.unreported_stall_s = 0.0
        self.startup_reported = False

    # -- the session -------------------------------------------------------------------

    async def run(self, end_at: float) -> PlayerReport:
        self.started_at = self.clock()
        # The thresholds are set in segments once the first playlist gives their length.
        self.playback = Playback(self.started_at, startup_s=0.0, resume_s=0.0)
        try:
            await self._play(end_at)
        finally:
            self.playback.finish(end_at)
        return self.report(end_at)

    def report(self, end_at: float) -> PlayerReport:
        return PlayerReport(
            player=self.index,
            session_id=self.session_id,
            started_at=self.started_at,
            ended_at=end_at,
            startup_delay_s=self.playback.startup_delay_s,
            wanted_s=self.playback.wanted_s(end_at),
            served_s=self.playback.played_s,
            stalls=tuple(self.playback.stalls),
            segments=self.segments,
            switches=tuple(self.switches),
            errors=dict(self.errors),
            skipped_segments=self.skipped,
        )

    async def _play(self, end_at: float) -> None:
        master = await self._load_master(end_at)
        if master is not None and master.bandwidth_bps:
            self.bitrate_kbps = master.bandwidth_bps // 1000
        if master is None:
            return
        chooser = self.chooser = PathwayChooser(
            master.pathways,
            initial_priority(master.pathways, master.default_pathway),
            self.config.penalty_s,
        )
        steering_url = master.steering_uri
        steering_ttl = self.config.steering_retry_s
        next_steer_at = self.clock() if steering_url else float("inf")
        self._switch(chooser.choose_anyway(self.clock()), "start")
        while (now := self.clock()) < end_at:
            if now >= next_steer_at and steering_url is not None:
                steering_url, steering_ttl = await self._steer(steering_url, steering_ttl)
                next_steer_at = self.clock() + steering_ttl
                best = chooser.choose(self.clock())
                if best is not None and best != self.current:
                    self._switch(best, "steering")
                continue
            assert self.current is not None
            if self.playlist is None or now >= self.next_reload_at:
                await self._reload(master.media_urls[self.current], end_at)
                continue
            playlist = self.playlist
            self.playback.advance(now)
            seq = self.next_seq
            assert seq is not None
            wake = min(self.next_reload_at, next_steer_at, end_at)
            if playlist.has(seq):
                room = self.config.max_buffer_segments * playlist.duration(seq)
                over = self.playback.level_s + playlist.duration(seq) - room
                if over <= 0:
                    await self._fetch_segment(
                        master.media_urls[self.current], playlist, seq, end_at
                    )
                    continue
                wake = min(wake, now + over)
            await asyncio.sleep(max(MIN_SLEEP_S, wake - now))

    async def _load_master(self, end_at: float) -> Multivariant | None:
        while self.clock() < end_at:
            for url in self.config.entry_urls:
                try:
                    body = await self._get(url)
                    return parse_multivariant(body.decode(), url)
                except RequestFailed as exc:
                    self.errors[f"master-{exc.reason}"] += 1
                except PlaylistError as exc:
                    self.errors[f"master-{exc.reason}"] += 1
            await asyncio.sleep(min(ENTRY_RETRY_S, max(0.0, end_at - self.clock())))
        return None

    async def _get(self, url: str) -> bytes:
        try:
            response = await self.client.get(url, timeout=self.config.request_timeout_s)
        except HttpFailure as exc:
            raise RequestFailed(exc.reason) from exc
        if response.status != 200:
            raise RequestFailed(f"http-{response.status}")
        return response.body

    # -- steering --------------------------------------------------------------------------

    async def _steer(self, url: str, ttl: float) -> tuple[str, float]:
        """Poll the steering manifest; the URL and TTL for the next poll. A failed poll keeps
        the current priority (HLS: go on with what you have) and retries after the TTL."""
        assert self.chooser is not None
        query = urlencode(
            {"_HLS_pathway": self.current or "", "_HLS_throughput": int(self.throughput_bps)}
        )
        try:
            body = await self._get(f"{url}{'&' if '?' in url else '?'}{query}")
            manifest = parse_steering_manifest(body, url)
        except (RequestFailed, PlaylistError) as exc:
            self.errors[f"steering-{exc.reason}"] += 1
            return url, ttl
        self.chooser.steer(manifest.priority)
        return manifest.reload_uri or url, manifest.ttl_s

    def _switch(self, target: str, reason: str) -> None:
        self.switches.append(Switch(self.clock(), self.current, target, reason))
        self.current = target
        self.playlist = None
        self.pathway_last_seq = None
        self.last_change_at = self.clock()

    async def _fail(self, reason: str, end_at: float) -> None:
        """The current pathway failed: avoid it and move to the next one at once."""
        assert self.chooser is not None and self.current is not None
        now = self.clock()
        self.errors[reason] += 1
        self._report_error(reason)
        self.chooser.penalize(self.current, now)
        target = self.chooser.choose(now)
        if target is None:
            target = self.chooser.choose_anyway(now)
            await asyncio.sleep(min(ALL_FAILED_BACKOFF_S, max(0.0, end_at - now)))
        if target != self.current:
            self._switch(target, reason)
        else:
            self.playlist = None
            self.last_change_at = self.clock()

    # -- media -----------------------------------------------------------------------------

    async def _reload(self, url: str, end_at: float) -> None:
        try:
            playlist = parse_media_playlist((await self._get(url)).decode())
        except (RequestFailed, PlaylistError) as exc:
            await self._fail(exc.reason, end_at)
            return
        now = self.clock()
        if self.stale_seq is not None:
            if playlist.last_seq <= self.stale_seq:
                await self._fail("stale-playlist", end_at)
                return
            self.stale_seq = None
        changed = self.pathway_last_seq is None or playlist.last_seq > self.pathway_last_seq
        if changed:
            self.pathway_last_seq = playlist.last_seq
            self.last_change_at = now
        elif now - self.last_change_at > self.config.stale_after_targets * playlist.target_duration:
            self.stale_seq = playlist.last_seq
            await self._fail("stale-playlist", end_at)
            return
        self.playlist = playlist
        self.next_reload_at = now + reload_delay(changed, playlist.target_duration)
        if self.next_seq is None:
            segment_s = playlist.duration(playlist.last_seq) if playlist.uris else 0.0
            self.playback.startup_s = self.config.startup_segments * segment_s
            self.playback.resume_s = self.config.resume_segments * segment_s
        if self.next_seq is None or self.next_seq < playlist.first_seq:
            # Joining, or so far behind that the window moved on: go to the live point.
            if self.next_seq is not None:
                self.skipped += start_sequence(playlist) - self.next_seq
            self.next_seq = start_sequence(playlist)

    async def _fetch_segment(
        self, media_url: str, playlist: MediaPlaylist, seq: int, end_at: float
    ) -> None:
        assert self.current is not None
        pathway = self.current
        asked = self.clock()
        try:
            body = await self._get(urljoin(media_url, playlist.uri(seq)))
        except RequestFailed as exc:
            await self._fail(exc.reason, end_at)
            return
        try:
            genuine = await self._genuine(body, playlist, seq)
        except RequestFailed as exc:
            await self._fail(exc.reason, end_at)
            return
        if not genuine:
            await self._fail("corrupt-segment", end_at)
            return
        now = self.clock()
        elapsed = max(now - asked, 1e-6)
        # A segment that lands after the deadline cannot be played within the session.
        arrived = min(now, end_at)
        measured = len(body) * 8 / elapsed
        self.throughput_bps = (
            measured if not self.throughput_bps else (0.8 * self.throughput_bps + 0.2 * measured)
        )
        stalled_before = self.playback.stalled_s
        starting = self.playback.phase is Phase.WAITING
        self.playback.add(arrived, playlist.duration(seq))
        self.unreported_stall_s += self.playback.stalled_s - stalled_before
        self.starved = self.starved or self.playback.stalled_s > stalled_before
        self.segments.add(seq, pathway, now)
        self.next_seq = seq + 1
        self._report_segment(pathway, playlist.duration(seq), seq, starting)

    async def _genuine(self, body: bytes, playlist: MediaPlaylist, seq: int) -> bool:
        """True if body is segment seq: its label in the clear, or for an encrypted
        segment whole AES blocks (and, with keys, a first block that decrypts to MPEG-TS)."""
        key_uri = playlist.key_uri(seq)
        if key_uri is None:
            return is_segment_of(body, self.config.content_id, seq)
        if self.keys is None:
            return is_encrypted_segment(body)
        return decrypts_to_transport_stream(body, await self.keys.key(key_uri), seq)

    # -- telemetry -------------------------------------------------------------------------

    def _base_sample(self, pathway: str) -> dict[str, CmcdValue]:
        region, cdn = split_pathway(pathway)
        self.sample_seq += 1
        return {
            "v": 2,
            "sid": self.session_id,
            "cid": self.config.content_id,
            "sf": Token("h"),
            "st": Token("l"),
            "ot": Token("av"),
            "bl": round_to(self.playback.level_s * 1000, 100),
            "ts": int(self.clock() * 1000),
            "sn": self.sample_seq,
            "com.liveward-viewer": self.viewer_id,
            "com.liveward-cdn": Token(cdn),
            "com.liveward-region": Token(region),
        }

    def _report_segment(self, pathway: str, duration_s: float, seq: int, starting: bool) -> None:
        if self.telemetry is None:
            return
        sample = self._base_sample(pathway)
        sample.update(
            br=self.bitrate_kbps,
            d=round(duration_s * 1000),
            mtp=round_to(self.throughput_bps / 1000, 100),
            nor=f"seg-{seq + 1}.ts",
            su=starting,
        )
        if self.starved:
            sample["bs"] = True
            sample["bsd"] = round(self.unreported_stall_s * 1000)
            self.starved = False
            self.unreported_stall_s = 0.0
        if not self.startup_reported and self.playback.startup_delay_s is not None:
            sample["msd"] = round(self.playback.startup_delay_s * 1000)
            self.startup_reported = True
        self.telemetry.offer(encode_cmcd(sample))

    def _report_error(self, reason: str) -> None:
        if self.telemetry is None or self.current is None:
            return
        sample = self._base_sample(self.current)
        sample["com.liveward-error"] = Token(reason)
        self.telemetry.offer(encode_cmcd(sample))


@dataclass(frozen=True, slots=True)
class FleetResult:
    """Every player's report, the telemetry figures, and when the run began and ended."""

    reports: tuple[PlayerReport, ...]
    telemetry: TelemetryStats | None
    started_at: float
    ended_at: float

    def summary(self) -> FleetSummary:
        return summarize(self.reports)

    def time_to_region(self, region: str, fraction: float, since: float) -> float | None:
        return time_to_region(self.reports, region, fraction, since)


async def run_fleet(config: FleetConfig, *, clock: Clock = time.time) -> FleetResult:
    """Run config.count players until config.duration_s has passed; they join over ramp_s."""
    client = HttpClient(
        max_per_host=config.max_connections_per_host,
        timeout=config.request_timeout_s,
        user_agent="liveward-player",
    )
    telemetry = (
        TelemetrySender(client, config.bridge_url, flush_s=config.telemetry_flush_s)
        if config.bridge_url
        else None
    )
    started_at = clock()
    end_at = started_at + config.duration_s
    stop = asyncio.Event()
    sender = asyncio.create_task(telemetry.run(stop)) if telemetry is not None else None
    keys = (
        SegmentKeys(client, config.key_token, config.request_timeout_s)
        if config.key_token
        else None
    )

    async def one(index: int) -> PlayerReport:
        await asyncio.sleep(config.ramp_s * index / max(1, config.count))
        return await Player(index, config, client, telemetry, clock, keys).run(end_at)

    try:
        reports = await asyncio.gather(*(one(i) for i in range(config.count)))
    finally:
        stop.set()
        if sender is not None:
            await sender
        await client.aclose()
    return FleetResult(tuple(reports), telemetry.stats if telemetry else None, started_at, clock())


def run_fleet_blocking(config: FleetConfig) -> FleetResult:
    """run_fleet on a fresh event loop (uvloop when installed: it carries more players)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_fleet(config))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_fleet(config))
