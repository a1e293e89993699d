"""The local append-only log: durability rules, segments and sealing, crash repair, refusals."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sinks.worm.checkpoint import open_checkpoint
from sinks.worm.entries import LogEntry
from sinks.worm.errors import LogCorrupt, WormError
from sinks.worm.log import LocalLog, LogReader
from sinks.worm.merkle import leaf_hash, root_hash

OpenLog = Callable[..., LocalLog]
Entry = Callable[..., LogEntry]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_appends_survive_a_reopen_with_the_same_root_and_offsets(
    open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log() as log:
        log.append([license_entry(o) for o in (3, 5, 9)])
        root = log.root
    with open_log() as log:
        assert log.size == 3
        assert log.root == root
        assert log.last_offset(0) == 9
        assert log.last_offset(1) == -1
        log.append([license_entry(10)])
        assert log.size == 4


def test_the_root_is_the_rfc_root_of_the_stored_entries(
    open_log: OpenLog, license_entry: Entry
) -> None:
    entries = [license_entry(o) for o in range(7)]
    with open_log() as log:
        log.append(entries)
        assert log.root == root_hash([leaf_hash(e.encode()) for e in entries])
        assert LogReader(log.directory).entry_bytes(5) == entries[5].encode()


def test_full_segments_are_checkpointed_then_sealed_read_only(
    open_log: OpenLog, signing_key: Ed25519PrivateKey, license_entry: Entry
) -> None:
    with open_log(segment_records=4) as log:
        log.append([license_entry(o) for o in range(10)])
        segments = log.segment_files()
        assert [first for first, _ in segments] == [0, 4, 8]
        assert [mode(p) for _, p in segments[:2]] == [0o444, 0o444]
        assert [mode(p.with_suffix(".idx")) for _, p in segments[:2]] == [0o444, 0o444]
        assert mode(segments[2][1]) & 0o200
        assert [size for size, _ in log.checkpoint_files()] == [4, 8]
        assert all(mode(p) == 0o444 for _, p in log.checkpoint_files())
        assert mode(log.metadata_path) == 0o444
        checkpoint = open_checkpoint(log.checkpoint_note(8), signing_key.public_key())
        assert checkpoint.root == root_hash(LogReader(log.directory).leaf_hashes(8))


def test_a_checkpoint_is_signed_only_when_the_log_grew(
    open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=100) as log:
        assert log.checkpoint() is None
        log.append([license_entry(0)])
        first = log.checkpoint()
        assert first is not None
        assert log.checkpoint() is first
        log.append([license_entry(1)])
        second = log.checkpoint(timestamp_ms=5)
        assert second is not None
        # The wall clock went backwards; checkpoint time does not.
        assert second.timestamp_ms == first.timestamp_ms
        assert [size for size, _ in log.checkpoint_files()] == [1, 2]


def test_an_offset_already_in_the_log_is_refused(open_log: OpenLog, license_entry: Entry) -> None:
    with open_log() as log:
        log.append([license_entry(4)])
        with pytest.raises(WormError) as caught:
            log.append([license_entry(5), license_entry(4)])
        assert caught.value.reason == "offset-order"
        assert log.size == 1
        log.append([license_entry(0, partition=1)])


def test_one_writer_at_a_time(open_log: OpenLog) -> None:
    with open_log():
        with pytest.raises(WormError) as caught:
            open_log()
        assert caught.value.reason == "log-locked"


def test_a_torn_final_write_is_cut_off_on_reopen(open_log: OpenLog, license_entry: Entry) -> None:
    with open_log(segment_records=100) as log:
        log.append([license_entry(o) for o in range(3)])
        log.checkpoint()
        log.append([license_entry(3)])
        root, segment = log.root, log.segment_files()[-1][1]
    whole = segment.stat().st_size
    with segment.open("ab") as out:
        out.write(b"\x00\x00\x01\x00partial record")  # the crash came mid-write
    with open_log(segment_records=100) as log:
        assert log.size == 4
        assert log.root == root
        assert segment.stat().st_size == whole
        log.append([license_entry(4)])


def test_an_index_lagging_its_segment_is_completed_on_reopen(
    open_log: OpenLog, license_entry: Entry
) -> None:
    entries = [license_entry(o) for o in range(5)]
    with open_log(segment_records=100) as log:
        log.append(entries)
        root, segment = log.root, log.segment_files()[-1][1]
    index = segment.with_suffix(".idx")
    with index.open("r+b") as out:
        out.truncate(index.stat().st_size - 52 - 20)  # lost the last entry and a half
    with open_log(segment_records=100) as log:
        assert log.size == 5
        assert log.root == root
        assert LogReader(log.directory).leaf_hashes(5)[-1] == leaf_hash(entries[4].encode())


def test_a_log_cut_below_its_checkpoint_is_not_extended(
    open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=100) as log:
        log.append([license_entry(o) for o in range(5)])
        log.checkpoint()
        segment = log.segment_files()[-1][1]
    with segment.open("r+b") as out:
        out.truncate(segment.stat().st_size - 10)
    with pytest.raises(LogCorrupt) as caught:
        open_log(segment_records=100)
    assert caught.value.reason == "truncated"


def test_a_log_whose_records_changed_under_its_checkpoint_is_not_extended(
    open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=4) as log:
        log.append([license_entry(o) for o in range(6)])
        sealed = log.segment_files()[0][1]
        sealed_index = sealed.with_suffix(".idx")
    # Rewrite a sealed record and its index entry consistently: only the root can tell.
    os.chmod(sealed_index, 0o644)
    data = bytearray(sealed_index.read_bytes())
    data[16] ^= 1
    sealed_index.write_bytes(bytes(data))
    with pytest.raises(LogCorrupt) as caught:
        open_log(segment_records=4)
    assert caught.value.reason == "checkpoint-mismatch"


def test_a_log_of_another_origin_is_refused(
    tmp_path: Path, open_log: OpenLog, license_entry: Entry, origin: str
) -> None:
    with open_log() as log:
        log.append([license_entry(0)])
    with pytest.raises(WormError) as caught:
        LocalLog(tmp_path / "log", origin=origin + "-x", signing_key=Ed25519PrivateKey.generate())
    assert caught.value.reason == "origin-mismatch"


def test_a_log_checkpointed_by_another_key_is_refused(
    tmp_path: Path, open_log: OpenLog, license_entry: Entry, origin: str
) -> None:
    with open_log() as log:
        log.append([license_entry(0)])
        log.checkpoint()
    with pytest.raises(LogCorrupt) as caught:
        LocalLog(tmp_path / "log", origin=origin, signing_key=Ed25519PrivateKey.generate())
    assert caught.value.reason == "unsigned"
