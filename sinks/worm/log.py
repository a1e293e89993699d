"""The append-only local license log: segment files, their indexes, and signed checkpoints.

Layout of a log directory (every integer big-endian; file names are 20-digit decimals):

    log.json                          format, origin, topic, verifier key; read-only
    segments/<first>.seg              "LWSEG001" ‖ u64 first leaf index, then records:
                                      u32 length ‖ entry (see entries.py), back to back
    segments/<first>.idx              "LWIDX001" ‖ u64 first leaf index, then 52 bytes per
                                      record: leaf hash (32) ‖ u64 position of its length
                                      prefix in the .seg ‖ u32 partition ‖ i64 Kafka offset
    checkpoints/<size>.note           signed checkpoint of the first <size> records
    .lock                             held (flock) by the one writer

Appends go to the last segment and its index and are fsynced before `append` returns.
A segment holding `segment_records` records is sealed: a checkpoint is signed at its
end, then it and its index are made read-only (0444) and a new segment begins. The
checkpoint notes are read-only from the moment they appear. Read-only is a guard
against accidents by the service's own user, nothing stronger: the owner or root can
chmod a file back. What makes tampering evident is the signed Merkle root; keeping
checkpoints somewhere the writer cannot rewrite (witnesses, an Object Lock bucket) is
what makes it evident to others.

The segments are the truth; an index is derived from its segment. On opening, the
writer re-reads the last (unsealed) segment, cuts a torn final record left by a crash
(never below the latest checkpoint) and completes its index; it refuses to extend a log
whose records no longer match its latest checkpoint.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sinks.worm.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint, verifier_key
from sinks.worm.entries import LogEntry
from sinks.worm.errors import CheckpointError, LogCorrupt, WormError
from sinks.worm.merkle import TreeFrontier, leaf_hash
from streams.meta import now_ms

FORMAT = "liveward-license-log/1"
SEGMENT_MAGIC = b"LWSEG001"
INDEX_MAGIC = b"LWIDX001"
FILE_HEADER = struct.Struct(">8sQ")
LENGTH_PREFIX = struct.Struct(">I")
INDEX_ENTRY = struct.Struct(">32sQIq")
SEALED_MODE = 0o444
DEFAULT_SEGMENT_RECORDS = 65_536
# A LicenseIssued event is a few hundred bytes; a length beyond this is damage, not data.
MAX_ENTRY_BYTES = 1 << 20

METADATA_FILE = "log.json"
SEGMENTS_DIR = "segments"
CHECKPOINTS_DIR = "checkpoints"
SEGMENT_SUFFIX = ".seg"
INDEX_SUFFIX = ".idx"
NOTE_SUFFIX = ".note"
_NUMBERED = re.compile(r"(\d{20})(\.seg|\.idx|\.note)")


def numbered(number: int, suffix: str) -> str:
    return f"{number:020d}{suffix}"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where one record is, its leaf hash, and the Kafka record it came from."""

    leaf_hash: bytes
    position: int
    partition: int
    offset: int

    def encode(self) -> bytes:
        return INDEX_ENTRY.pack(self.leaf_hash, self.position, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """A segment file read record by record, and where (and why) reading stopped early."""

    first_index: int
    records: list[tuple[int, bytes]]
    valid_bytes: int
    file_bytes: int
    problem: str | None = None
    detail: str = ""


def scan_segment(path: Path) -> SegmentScan:
    """Every whole record of a segment with its position; `problem` names what stopped the scan.

    Problems: bad-header (not a segment), truncated (the file ends inside a record),
    bad-length (a length prefix no record could have).
    """
    data = path.read_bytes()
    if len(data) < FILE_HEADER.size:
        return SegmentScan(-1, [], 0, len(data), "truncated", "the file ends inside its header")
    magic, first = FILE_HEADER.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        return SegmentScan(-1, [], 0, len(data), "bad-header", f"magic {magic!r}")
    records: list[tuple[int, bytes]] = []
    position = FILE_HEADER.size

    def stopped(problem: str, detail: str) -> SegmentScan:
        where = f"record {first + len(records)}"
        return SegmentScan(first, records, position, len(data), problem, f"{where}: {detail}")

    while position < len(data):
        if position + LENGTH_PREFIX.size > len(data):
            return stopped("truncated", "the file ends inside its length prefix")
        (length,) = LENGTH_PREFIX.unpack_from(data, position)
        if length > MAX_ENTRY_BYTES:
            return stopped("bad-length", f"a length of {length} bytes")
        end = position + LENGTH_PREFIX.size + length
        if end > len(data):
            left = len(data) - position - LENGTH_PREFIX.size
            return stopped("truncated", f"{length} bytes long, the file ends {left} bytes in")
        records.append((position, data[position + LENGTH_PREFIX.size : end]))
        position = end
    return SegmentScan(first, records, position, len(data))


def read_index(path: Path) -> tuple[int, list[IndexEntry], int]:
    """(first leaf index, entries, bytes after the last whole entry) of an index file."""
    data = path.read_bytes()
    if len(data) < FILE_HEADER.size:
        raise LogCorrupt(f"{path.name}: shorter than its header", reason="index-mismatch")
    magic, first = FILE_HEADER.unpack_from(data)
    if magic != INDEX_MAGIC:
        raise LogCorrupt(f"{path.name}: not an index (magic {magic!r})", reason="index-mismatch")
    body = memoryview(data)[FILE_HEADER.size :]
    whole = len(body) - len(body) % INDEX_ENTRY.size
    entries = [
        IndexEntry(bytes(h), position, partition, offset)
        for h, position, partition, offset in INDEX_ENTRY.iter_unpack(body[:whole])
    ]
    return first, entries, len(body) - whole


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal(path: Path) -> None:
    """Make a file read-only for everyone (0444); the module docstring says what that is worth."""
    os.chmod(path, SEALED_MODE)


def is_sealed(path: Path) -> bool:
    return path.stat().st_mode & 0o222 == 0


class SealedFileReplica(Protocol):
    """Somewhere sealed files are also kept, out of the writer's reach (see sinks/worm/s3.py).

    `put` is called with each file as it is sealed; `sync` with every sealed file when
    the log opens, to catch up on what a failure or a crash left behind.
    """

    def put(self, path: Path) -> None: ...

    def sync(self, paths: Sequence[Path]) -> None: ...


class LogReader:
    """Read access to a log directory: metadata, checkpoints, leaf hashes and entries.

    It trusts the indexes to find things fast; proofs built from them are checked
    against signed roots by whoever receives them, and `audit verify` checks the indexes.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.segments_dir = directory / SEGMENTS_DIR
        self.checkpoints_dir = directory / CHECKPOINTS_DIR
        self.metadata_path = directory / METADATA_FILE

    def metadata(self) -> dict[str, Any]:
        try:
            metadata = json.loads(self.metadata_path.read_text())
        except FileNotFoundError as exc:
            raise WormError(f"no license log at {self.directory}", reason="no-log") from exc
        except (OSError, ValueError) as exc:
            raise LogCorrupt(f"{self.metadata_path}: {exc}", reason="bad-metadata") from exc
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise LogCorrupt(f"{self.metadata_path} is not a {FORMAT} log", reason="bad-metadata")
        return metadata

    @property
    def origin(self) -> str:
        return str(self.metadata()["origin"])

    def segment_files(self) -> list[tuple[int, Path]]:
        """(first leaf index from the name, path) of every segment, in order."""
        return self._numbered(self.segments_dir, SEGMENT_SUFFIX)

    def checkpoint_files(self) -> list[tuple[int, Path]]:
        """(tree size from the name, path) of every checkpoint note, smallest first."""
        return self._numbered(self.checkpoints_dir, NOTE_SUFFIX)

    @staticmethod
    def _numbered(directory: Path, suffix: str) -> list[tuple[int, Path]]:
        if not directory.is_dir():
            return []
        found = []
        for path in directory.iterdir():
            match = _NUMBERED.fullmatch(path.name)
            if match and match.group(2) == suffix:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def checkpoint_note(self, size: int) -> str:
        path = self.checkpoints_dir / numbered(size, NOTE_SUFFIX)
        try:
            return path.read_text()
        except FileNotFoundError as exc:
            sizes = [s for s, _ in self.checkpoint_files()]
            raise WormError(
                f"no checkpoint at size {size}; checkpoints: {_ranges(sizes)}",
                reason="no-checkpoint",
            ) from exc

    def latest_checkpoint_note(self) -> tuple[int, str] | None:
        files = self.checkpoint_files()
        if not files:
            return None
        size, path = files[-1]
        return size, path.read_text()

    def index_entries(self) -> Iterator[IndexEntry]:
        """Every index entry of the log, in leaf order."""
        for first, path in self.segment_files():
            index_first, entries, _ = read_index(path.with_suffix(INDEX_SUFFIX))
            if index_first != first:
                raise LogCorrupt(
                    f"index of segment {first} starts at {index_first}", reason="index-mismatch"
                )
            yield from entries

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The first `size` leaf hashes, from the indexes; WormError if the log is shorter."""
        hashes: list[bytes] = []
        for entry in self.index_entries():
            if len(hashes) == size:
                break
            hashes.append(entry.leaf_hash)
        if len(hashes) < size:
            raise WormError(f"the log holds {len(hashes)} records, not {size}", reason="too-short")
        return hashes

    def entry_bytes(self, index: int) -> bytes:
        """The stored bytes (leaf data) of record `index`."""
        files = self.segment_files()
        for (first, path), following in zip(files, [*files[1:], None], strict=True):
            if index < first or (following is not None and index >= following[0]):
                continue
            _, entries, _ = read_index(path.with_suffix(INDEX_SUFFIX))
            if index - first >= len(entries):
                break
            with path.open("rb") as segment:
                segment.seek(entries[index - first].position)
                (length,) = LENGTH_PREFIX.unpack(segment.read(LENGTH_PREFIX.size))
                return segment.read(length)
        raise WormError(f"no record {index} in the log", reason="no-record")


def _ranges(sizes: Sequence[int]) -> str:
    if not sizes:
        return "none"
    if len(sizes) <= 6:
        return ", ".join(map(str, sizes))
    return f"{', '.join(map(str, sizes[:3]))}, …, {', '.join(map(str, sizes[-3:]))}"


@dataclass(slots=True)
class _ActiveSegment:
    first: int
    count: int
    position: int
    segment: IO[bytes]
    index: IO[bytes]
    segment_path: Path
    index_path: Path


class LocalLog(LogReader):
    """The writer: appends entries durably, signs checkpoints, seals full segments.

    One writer per directory (an exclusive flock on `.lock`). `append` returns only
    after the records and their index entries are fsynced; a failed write leaves the
    log unusable until it is opened again, which repairs a torn tail.
    """

    def __init__(
        self,
        directory: Path,
        *,
        origin: str,
        signing_key: Ed25519PrivateKey,
        topic: str = "drm.licenses",
        segment_records: int = DEFAULT_SEGMENT_RECORDS,
        clock: Callable[[], int] = now_ms,
        replica: SealedFileReplica | None = None,
    ) -> None:
        super().__init__(directory)
        self._replica = replica
        if segment_records < 1:
            raise WormError("segment_records must be at least 1", reason="bad-config")
        self._key = signing_key
        self._clock = clock
        self.segment_records = segment_records
        self._frontier = TreeFrontier()
        self._last_offsets: dict[int, int] = {}
        self._active: _ActiveSegment | None = None
        self._latest: Checkpoint | None = None
        self._broken = False
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        self._lock = (directory / ".lock").open("a+b")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise WormError(f"another writer holds {directory}", reason="log-locked") from exc
        try:
            self._ensure_metadata(origin, topic)
            self._recover()
            if self._replica is not None:
                self._replica.sync(self.sealed_files())
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        return self._frontier.size

    @property
    def root(self) -> bytes:
        return self._frontier.root()

    @property
    def latest_checkpoint(self) -> Checkpoint | None:
        return self._latest

    def last_offset(self, partition: int) -> int:
        """The highest Kafka offset of `partition` in the log, -1 if none."""
        return self._last_offsets.get(partition, -1)

    def _ensure_metadata(self, origin: str, topic: str) -> None:
        if not self.metadata_path.exists():
            metadata = {
                "format": FORMAT,
                "origin": origin,
                "topic": topic,
                "hash": "RFC 6962 SHA-256",
                "verifier_key": verifier_key(origin, self._key.public_key()),
            }
            temporary = self.directory / f".{METADATA_FILE}.tmp"
            temporary.write_text(json.dumps(metadata, indent=2) + "\n")
            seal(temporary)
            temporary.rename(self.metadata_path)
            _fsync_dir(self.directory)
        stored = self.metadata()
        if stored["origin"] != origin:
            raise WormError(
                f"{self.directory} is the log {stored['origin']!r}, not {origin!r}",
                reason="origin-mismatch",
            )

    def _recover(self) -> None:
        latest_note = self.latest_checkpoint_note()
        if latest_note is not None:
            try:
                self._latest = open_checkpoint(
                    latest_note[1], self._key.public_key(), origin=self.origin
                )
            except CheckpointError as exc:
                raise LogCorrupt(f"latest checkpoint: {exc}", reason=exc.reason) from exc
        checkpoint_root: bytes | None = None
        files = self.segment_files()
        for position, (first, path) in enumerate(files):
            if first != self.size:
                raise LogCorrupt(
                    f"segment {path.name} starts at {first}, the log has {self.size} records",
                    reason="segment-gap",
                )
            last = position == len(files) - 1
            entries = self._recover_last(first, path) if last else self._sealed_entries(first, path)
            for entry in entries:
                self._frontier.append(entry.leaf_hash)
                self._last_offsets[entry.partition] = entry.offset
                if self._latest is not None and self.size == self._latest.size:
                    checkpoint_root = self._frontier.root()
        if self._latest is not None:
            if self.size < self._latest.size:
                raise LogCorrupt(
                    f"the log holds {self.size} records, its checkpoint {self._latest.size}",
                    reason="truncated",
                )
            if checkpoint_root != self._latest.root:
                raise LogCorrupt(
                    f"the first {self._latest.size} records do not hash to their checkpoint",
                    reason="checkpoint-mismatch",
                )

    def _sealed_entries(self, first: int, path: Path) -> list[IndexEntry]:
        index_first, entries, _ = read_index(path.with_suffix(INDEX_SUFFIX))
        if index_first != first:
            raise LogCorrupt(
                f"index of {path.name} starts at {index_first}", reason="index-mismatch"
            )
        return entries

    def _recover_last(self, first: int, path: Path) -> list[IndexEntry]:
        index_path = path.with_suffix(INDEX_SUFFIX)
        scan = scan_segment(path)
        if scan.problem == "truncated" and scan.valid_bytes == 0:
            # A crash between creating the file and writing its header: nothing was in it.
            self._open_segment(first)
            return []
        if scan.problem == "truncated" and not is_sealed(path):
            if self._latest is not None and first + len(scan.records) < self._latest.size:
                raise LogCorrupt(
                    f"{path.name}: {scan.detail}, below the latest checkpoint", reason="truncated"
                )
            # A torn final write: its offset was never committed, Kafka delivers it again.
            with path.open("r+b") as segment:
                segment.truncate(scan.valid_bytes)
                os.fsync(segment.fileno())
        elif scan.problem is not None:
            raise LogCorrupt(f"{path.name}: {scan.detail}", reason=scan.problem)
        if scan.first_index != first:
            raise LogCorrupt(
                f"{path.name} says it starts at {scan.first_index}", reason="segment-gap"
            )

        computed = []
        for position, data in scan.records:
            entry = LogEntry.decode(data)
            computed.append(IndexEntry(leaf_hash(data), position, entry.partition, entry.offset))
        stored: list[IndexEntry] = []
        torn_index = 0
        if index_path.exists() and index_path.stat().st_size >= FILE_HEADER.size:
            _, stored, torn_index = read_index(index_path)
        if stored != computed[: len(stored)]:
            raise LogCorrupt(
                f"{index_path.name} disagrees with its segment", reason="index-mismatch"
            )

        if is_sealed(path):
            if len(stored) != len(computed):
                raise LogCorrupt(f"sealed {index_path.name} is incomplete", reason="index-mismatch")
            return computed
        if len(stored) != len(computed) or torn_index or not index_path.exists():
            # The index lags its segment after a crash between the two writes: complete it.
            with index_path.open("wb") as index:
                index.write(FILE_HEADER.pack(INDEX_MAGIC, first))
                index.write(b"".join(entry.encode() for entry in computed))
                index.flush()
                os.fsync(index.fileno())
        self._active = _ActiveSegment(
            first,
            len(computed),
            scan.valid_bytes,
            path.open("ab"),
            index_path.open("ab"),
            path,
            index_path,
        )
        return computed

    def _open_segment(self, first: int) -> None:
        path = self.segments_dir / numbered(first, SEGMENT_SUFFIX)
        index_path = path.with_suffix(INDEX_SUFFIX)
        segment = path.open("wb")
        index = index_path.open("wb")
        for handle, magic in ((segment, SEGMENT_MAGIC), (index, INDEX_MAGIC)):
            handle.write(FILE_HEADER.pack(magic, first))
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(self.segments_dir)
        self._active = _ActiveSegment(first, 0, FILE_HEADER.size, segment, index, path, index_path)

    def append(self, entries: Sequence[LogEntry]) -> int:
        """Append entries durably (fsynced) and return the new log size.

        Within a partition Kafka offsets must increase (reason offset-order otherwise):
        the caller skips what the log already holds, the log refuses to hold it twice.
        """
        if self._broken:
            raise WormError("an earlier write failed; open the log again", reason="log-broken")
        last = dict(self._last_offsets)
        for entry in entries:
            if entry.offset <= last.get(entry.partition, -1):
                raise WormError(
                    f"offset {entry.offset} of partition {entry.partition} is not after "
                    f"{last[entry.partition]}, already in the log",
                    reason="offset-order",
                )
            last[entry.partition] = entry.offset
        try:
            pending = list(entries)
            while pending:
                if self._active is not None and self._active.count >= self.segment_records:
                    self._seal_active()
                if self._active is None:
                    self._open_segment(self.size)
                assert self._active is not None
                room = self.segment_records - self._active.count
                self._write(pending[:room])
                pending = pending[room:]
        except OSError as exc:
            self._broken = True
            raise WormError(
                f"writing the license log failed: {exc}", reason="write-failed"
            ) from exc
        return self.size

    def _write(self, entries: Sequence[LogEntry]) -> None:
        active = self._active
        assert active is not None
        records = bytearray()
        index = bytearray()
        hashes = []
        position = active.position
        for entry in entries:
            data = entry.encode()
            hashed = leaf_hash(data)
            hashes.append(hashed)
            index += INDEX_ENTRY.pack(hashed, position, entry.partition, entry.offset)
            records += LENGTH_PREFIX.pack(len(data))
            records += data
            position += LENGTH_PREFIX.size + len(data)
        active.segment.write(records)
        active.segment.flush()
        os.fsync(active.segment.fileno())
        active.index.write(index)
        active.index.flush()
        os.fsync(active.index.fileno())
        # The tree grows only once the bytes are on disk, so a checkpoint never covers less.
        for hashed, entry in zip(hashes, entries, strict=True):
            self._frontier.append(hashed)
            self._last_offsets[entry.partition] = entry.offset
        active.count += len(entries)
        active.position = position

    def _seal_active(self) -> None:
        active = self._active
        assert active is not None
        self.checkpoint()
        active.segment.close()
        active.index.close()
        seal(active.segment_path)
        seal(active.index_path)
        self._active = None
        if self._replica is not None:
            self._replica.put(active.segment_path)
            self._replica.put(active.index_path)

    def checkpoint(self, timestamp_ms: int | None = None) -> Checkpoint | None:
        """Sign a checkpoint of the whole log (None while it is empty).

        Nothing new since the latest checkpoint: returns it, signing nothing.
        """
        if self._broken:
            raise WormError("an earlier write failed; open the log again", reason="log-broken")
        if self.size == 0:
            return None
        if self._latest is not None and self._latest.size == self.size:
            return self._latest
        timestamp = self._clock() if timestamp_ms is None else timestamp_ms
        if self._latest is not None:
            # Checkpoint times never go backwards, whatever the wall clock does.
            timestamp = max(timestamp, self._latest.timestamp_ms)
        checkpoint = Checkpoint(self.origin, self.size, self._frontier.root(), timestamp)
        note = sign_checkpoint(checkpoint, self._key)
        final = self.checkpoints_dir / numbered(checkpoint.size, NOTE_SUFFIX)
        temporary = self.checkpoints_dir / f".{final.name}.tmp"
        try:
            with temporary.open("w") as out:
                out.write(note)
                out.flush()
                os.fsync(out.fileno())
            seal(temporary)
            temporary.rename(final)
            _fsync_dir(self.checkpoints_dir)
        except OSError as exc:
            raise WormError(
                f"writing checkpoint {final.name}: {exc}", reason="write-failed"
            ) from exc
        self._latest = checkpoint
        if self._replica is not None:
            self._replica.put(final)
        return checkpoint

    def sealed_files(self) -> list[Path]:
        """Every read-only file of the log: metadata, checkpoints, full segments and indexes."""
        files = [self.metadata_path, *(path for _, path in self.checkpoint_files())]
        for _, segment in self.segment_files():
            index = segment.with_suffix(INDEX_SUFFIX)
            files.extend(path for path in (segment, index) if path.exists() and is_sealed(path))
        return files

    def close(self) -> None:
        """Close the files and release the writer lock (no checkpoint: see `checkpoint`)."""
        if self._active is not None:
            self._active.segment.close()
            self._active.index.close()
            self._active = None
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> LocalLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
