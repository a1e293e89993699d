"""What a player reads: multivariant playlists, live media playlists, steering manifests. Pure.

Only the subset our origins and the steering service produce is understood; anything a
player cannot use raises PlaylistError with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import orjson

from services.players.errors import PlaylistError

STEERING_TAG = "#EXT-X-CONTENT-STEERING:"
STREAM_INF_TAG = "#EXT-X-STREAM-INF:"
KEY_TAG = "#EXT-X-KEY:"


def attributes(text: str) -> dict[str, str]:
    """An HLS attribute list (`A=1,B="x,y"`) as a dict, quotes removed."""
    found: dict[str, str] = {}
    index = 0
    while index < len(text):
        equals = text.find("=", index)
        if equals < 0:
            break
        name = text[index:equals].strip()
        if text.startswith('"', equals + 1):
            close = text.find('"', equals + 2)
            if close < 0:
                raise PlaylistError(
                    f"unterminated quoted value for {name}", reason="malformed-attributes"
                )
            found[name] = text[equals + 2 : close]
            index = close + 2
        else:
            comma = text.find(",", equals)
            end = len(text) if comma < 0 else comma
            found[name] = text[equals + 1 : end]
            index = end + 1
    return found


@dataclass(frozen=True, slots=True)
class Multivariant:
    """Steering server, the initial pathway, and each pathway's media playlist URL."""

    steering_uri: str | None
    default_pathway: str | None
    media_urls: dict[str, str]
    # The first variant's BANDWIDTH (what a player reports as the rendition's bitrate).
    bandwidth_bps: int | None = None

    @property
    def pathways(self) -> tuple[str, ...]:
        """Pathway ids in playlist order."""
        return tuple(self.media_urls)


def parse_multivariant(text: str, base_url: str) -> Multivariant:
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an HLS playlist", reason="malformed-multivariant")
    steering_uri = default = None
    bandwidth: int | None = None
    media_urls: dict[str, str] = {}
    for index, line in enumerate(lines):
        if line.startswith(STEERING_TAG):
            attrs = attributes(line[len(STEERING_TAG) :])
            steering_uri = urljoin(base_url, attrs["SERVER-URI"]) if "SERVER-URI" in attrs else None
            default = attrs.get("PATHWAY-ID")
        elif line.startswith(STREAM_INF_TAG):
            attrs = attributes(line[len(STREAM_INF_TAG) :])
            uri = next((u for u in lines[index + 1 :] if u and not u.startswith("#")), None)
            if uri is None:
                raise PlaylistError("a variant without a URI", reason="malformed-multivariant")
            # Without content steering every variant is on the one implicit pathway ".".
            media_urls.setdefault(attrs.get("PATHWAY-ID", "."), urljoin(base_url, uri))
            if bandwidth is None and attrs.get("BANDWIDTH", "").isdigit():
                bandwidth = int(attrs["BANDWIDTH"])
    if not media_urls:
        raise PlaylistError("no variants", reason="malformed-multivariant")
    return Multivariant(steering_uri, default, media_urls, bandwidth)


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """A live window: segment URIs by sequence number, all of one duration per segment,
    and the AES-128 key URI each segment is encrypted under (None: in the clear)."""

    target_duration: float
    media_sequence: int
    uris: tuple[str, ...]
    durations: tuple[float, ...]
    ended: bool = False
    key_uris: tuple[str | None, ...] = ()

    @property
    def first_seq(self) -> int:
        return self.media_sequence

    @property
    def last_seq(self) -> int:
        return self.media_sequence + len(self.uris) - 1

    def has(self, seq: int) -> bool:
        return self.first_seq <= seq <= self.last_seq

    def uri(self, seq: int) -> str:
        return self.uris[seq - self.media_sequence]

    def duration(self, seq: int) -> float:
        return self.durations[seq - self.media_sequence]

    def key_uri(self, seq: int) -> str | None:
        index = seq - self.media_sequence
        return self.key_uris[index] if index < len(self.key_uris) else None


def key_of(text: str) -> str | None:
    """The key URI an `EXT-X-KEY` attribute list names: None for METHOD=NONE. Only
    AES-128 with the IV left to the media sequence is understood."""
    attrs = attributes(text)
    method = attrs.get("METHOD")
    if method == "NONE":
        return None
    if method != "AES-128" or "URI" not in attrs or "IV" in attrs:
        raise PlaylistError(f"unsupported EXT-X-KEY {text[:80]}", reason="unsupported-key")
    return attrs["URI"]


def parse_media_playlist(text: str) -> MediaPlaylist:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "#EXTM3U":
        raise PlaylistError("not an HLS playlist", reason="malformed-media-playlist")
    target = None
    sequence = 0
    uris: list[str] = []
    durations: list[float] = []
    pending: float | None = None
    ended = False
    key: str | None = None
    keys: list[str | None] = []
    try:
        for raw in lines[1:]:
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#EXT-X-TARGETDURATION:"):
                target = float(line.split(":", 1)[1])
            elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                sequence = int(line.split(":", 1)[1])
            elif line.startswith("#EXTINF:"):
                pending = float(line[8:].split(",", 1)[0])
            elif line == "#EXT-X-ENDLIST":
                ended = True
            elif line.startswith(KEY_TAG):
                key = key_of(line[len(KEY_TAG) :])
            elif not line.startswith("#"):
                if pending is None:
                    raise PlaylistError(
                        f"segment {line} has no EXTINF", reason="malformed-media-playlist"
                    )
                uris.append(line)
                durations.append(pending)
                keys.append(key)
                pending = None
    except ValueError as exc:
        raise PlaylistError(
            f"bad number in playlist: {exc}", reason="malformed-media-playlist"
        ) from exc
    if target is None:
        raise PlaylistError("no EXT-X-TARGETDURATION", reason="malformed-media-playlist")
    return MediaPlaylist(target, sequence, tuple(uris), tuple(durations), ended, tuple(keys))


@dataclass(frozen=True, slots=True)
class SteeringManifest:
    """An HLS content steering manifest (VERSION 1)."""

    ttl_s: float
    priority: tuple[str, ...]
    reload_uri: str | None


def parse_steering_manifest(body: bytes, base_url: str) -> SteeringManifest:
    """Parse the JSON steering manifest; RELOAD-URI is resolved against base_url.

    PATHWAY-CLONES are not followed: our steering service names real pathways only.
    """
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PlaylistError(
            "steering manifest is not JSON", reason="malformed-steering-manifest"
        ) from exc
    if not isinstance(data, dict) or data.get("VERSION") != 1:
        raise PlaylistError(
            "steering manifest must be a VERSION 1 object", reason="malformed-steering-manifest"
        )
    ttl = data.get("TTL")
    priority = data.get("PATHWAY-PRIORITY")
    reload_uri = data.get("RELOAD-URI")
    if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= 0:
        raise PlaylistError("TTL must be a positive number", reason="malformed-steering-manifest")
    if (
        not isinstance(priority, list)
        or not priority
        or not all(isinstance(p, str) and p for p in priority)
    ):
        raise PlaylistError(
            "PATHWAY-PRIORITY must list pathway ids", reason="malformed-steering-manifest"
        )
    if reload_uri is not None and not isinstance(reload_uri, str):
        raise PlaylistError("RELOAD-URI must be a string", reason="malformed-steering-manifest")
    return SteeringManifest(
        float(ttl), tuple(priority), urljoin(base_url, reload_uri) if reload_uri else None
    )
