"""Where media lives: URL paths on origins and edges, and files in a region's media store."""

from __future__ import annotations

import re
from pathlib import Path

from liveward.settings import Settings

DEFAULT_CONTENT = "match-of-the-day"
MASTER_PLAYLIST = "master.m3u8"
MEDIA_PLAYLIST = "media.m3u8"
# Content ids end up in URLs and file names: keep them to a safe alphabet.
CONTENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SEGMENT_NAME = re.compile(r"^seg-(\d{1,12})\.ts$")


def is_content_id(value: str) -> bool:
    return CONTENT_ID.match(value) is not None


def segment_name(seq: int) -> str:
    return f"seg-{seq}.ts"


def segment_seq(name: str) -> int | None:
    """The sequence number in a segment file name, or None if it is not one."""
    match = SEGMENT_NAME.match(name)
    return int(match.group(1)) if match else None


def live_path(content_id: str, name: str) -> str:
    """The URL path of a playlist or segment on an origin or edge."""
    return f"/live/{content_id}/{name}"


def region_store(settings: Settings, region: str) -> Path:
    """The directory a region's ingest, packagers and origin share (the origin's storage)."""
    return settings.state_dir / "media" / region


def chunk_dir(store: Path, content_id: str) -> Path:
    """Where the ingest point drops contribution chunks for the packagers."""
    return store / "ingest" / content_id


def chunk_path(store: Path, content_id: str, seq: int) -> Path:
    return chunk_dir(store, content_id) / f"chunk-{seq}.bin"


def segment_dir(store: Path, content_id: str) -> Path:
    """Where packagers write finished segments and the origin reads them."""
    return store / "origin" / content_id


def segment_path(store: Path, content_id: str, seq: int) -> Path:
    return segment_dir(store, content_id) / segment_name(seq)


def contribution_path(store: Path, content_id: str, seq: int) -> Path:
    """A real encoder's finished chunk (MPEG-TS, one segment long) for the packagers."""
    return chunk_dir(store, content_id) / f"chunk-{seq}.ts"


def encoder_dir(store: Path, content_id: str) -> Path:
    """Where the ingest encoder writes chunks it has not finished yet."""
    return store / "encoder" / content_id


def packaging_dir(store: Path, packager: str, content_id: str) -> Path:
    """Where one packager's ffmpeg writes segments before they are published."""
    return store / "packaging" / f"packager-{packager}" / content_id


def private_key_dir(store: Path, packager: str) -> Path:
    """One packager's key files (content keys in the clear): created 0700, never served."""
    return store / "private" / f"packager-{packager}"
