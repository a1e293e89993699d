"""A region's media store on disk: chunks from the ingest point, segments from the packagers.

Writers publish with write-to-temporary then `os.replace`, so a reader sees a whole file
or none, and two packagers writing the same segment (same bytes) never tear it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def publish_file(path: Path, data: bytes, *, writer: str) -> None:
    """Write data to path atomically; writer names the temporary file so writers never clash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{writer}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def prune_numbered(directory: Path, prefix: str, suffix: str, keep_from: int) -> int:
    """Delete files `<prefix><n><suffix>` with n < keep_from; returns how many went."""
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        number = name[len(prefix) : len(name) - len(suffix)]
        if number.isdigit() and int(number) < keep_from:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
                removed += 1
    return removed
