"""Auditing the license log: full verification, and proofs a third party checks with the public key.

`verify_log` re-reads every record, recomputes the tree and checks every checkpoint's
signature and root, naming each problem with a reason code. `inclusion_bundle` and
`consistency_bundle` package a proof with the signed checkpoint(s) it is against;
`check_bundle` needs only that JSON and the log's public key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sinks.worm.checkpoint import Checkpoint, open_checkpoint, verifier_key
from sinks.worm.entries import LogEntry
from sinks.worm.errors import CheckpointError, LogCorrupt, ProofError, WormError
from sinks.worm.log import (
    INDEX_SUFFIX,
    IndexEntry,
    LogReader,
    is_sealed,
    read_index,
    scan_segment,
)
from sinks.worm.merkle import (
    TreeFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from streams.codec import default_codec
from streams.errors import DecodeError
from streams.events import LicenseIssued

PROOF_FORMAT = "liveward-license-log-proof/1"
MAX_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing `verify_log` found wrong: a reason code, the file or record, and details."""

    reason: str
    where: str
    detail: str


@dataclass(slots=True)
class VerifyReport:
    """What `verify_log` checked and found; `ok` when no problem was found."""

    log: str
    origin: str | None = None
    records: int = 0
    segments: int = 0
    checkpoints: int = 0
    latest_checkpoint: dict[str, Any] | None = None
    # Records after the latest checkpoint: intact as far as the index says, but signed by
    # nothing yet (the sink signs every N records, every T seconds and when it stops).
    unsigned_records: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_left_out: int = 0
    # What is odd about the last segment's unsigned end, e.g. a record being written
    # while we read: not evidence of anything, since no checkpoint covers it. Should
    # records that a checkpoint signs be missing, that checkpoint reports `truncated`.
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, reason: str, where: str, detail: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(reason, where, detail))
        else:
            self.problems_left_out += 1

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def verify_log(
    directory: Path, public_key: Ed25519PublicKey, *, name: str | None = None
) -> VerifyReport:
    """Recompute the whole log from its records and check it against every checkpoint.

    `name` (from a verifier key) pins which log the key is for. Never raises for what it
    finds on disk: each finding is a Problem in the report.
    """
    reader = LogReader(directory)
    report = VerifyReport(log=str(directory))
    try:
        metadata = reader.metadata()
    except WormError as exc:
        report.add(exc.reason, str(reader.metadata_path), str(exc))
        return report
    origin = str(metadata.get("origin"))
    report.origin = origin
    if name is not None and name != origin:
        report.add("origin-mismatch", "log.json", f"the key is for {name!r}, the log is {origin!r}")
    stated_key = metadata.get("verifier_key")
    if stated_key != verifier_key(origin, public_key):
        report.add(
            "key-mismatch",
            "log.json",
            f"the log says it is signed by {stated_key}, the key given is "
            f"{verifier_key(origin, public_key)}",
        )

    wanted_sizes = {size for size, _ in reader.checkpoint_files()}
    roots = _verify_records(reader, report, wanted_sizes)
    _verify_checkpoints(reader, report, public_key, origin, roots)
    return report


def _verify_records(
    reader: LogReader, report: VerifyReport, wanted_sizes: set[int]
) -> dict[int, bytes]:
    """Check every segment and its index; return the root at each size in wanted_sizes."""
    frontier = TreeFrontier()
    roots: dict[int, bytes] = {}
    last_offsets: dict[int, tuple[int, int]] = {}
    codec = default_codec()
    files = reader.segment_files()
    report.segments = len(files)
    for position, (first, path) in enumerate(files):
        if first != frontier.size:
            report.add(
                "segment-gap",
                path.name,
                f"starts at record {first}, the segments before it hold {frontier.size}",
            )
        if position < len(files) - 1 and not is_sealed(path):
            report.add("seal-broken", path.name, "a full segment is writable again")
        scan = scan_segment(path)
        last = position == len(files) - 1
        if scan.problem == "truncated" and last:
            report.notes.append(Problem(scan.problem, path.name, scan.detail))
        elif scan.problem is not None:
            report.add(scan.problem, path.name, scan.detail)
        if scan.first_index not in (-1, first):
            report.add(
                "segment-renamed", path.name, f"its header says it starts at {scan.first_index}"
            )
        indexed = _read_index_for(path, first, report)
        if indexed is not None:
            _compare_index(path, first, scan.records, indexed, report, last=last)
        for offset_in_segment, (_, data) in enumerate(scan.records):
            number = frontier.size
            where = f"record {number} ({path.name} #{offset_in_segment})"
            try:
                entry = LogEntry.decode(data)
            except LogCorrupt as exc:
                report.add(exc.reason, where, str(exc))
            else:
                previous = last_offsets.get(entry.partition)
                if previous is not None and entry.offset <= previous[1]:
                    report.add(
                        "offset-order",
                        where,
                        f"Kafka offset {entry.offset} comes after offset {previous[1]} "
                        f"(record {previous[0]}) of partition {entry.partition}: "
                        "records reordered or repeated",
                    )
                last_offsets[entry.partition] = (number, entry.offset)
                try:
                    codec.decode_as(entry.event, LicenseIssued)
                except DecodeError as exc:
                    report.add("undecodable-event", where, f"[{exc.reason}] {exc}")
            frontier.append(leaf_hash(data))
            if frontier.size in wanted_sizes:
                roots[frontier.size] = frontier.root()
    report.records = frontier.size
    return roots


def _read_index_for(path: Path, first: int, report: VerifyReport) -> list[IndexEntry] | None:
    index_path = path.with_suffix(INDEX_SUFFIX)
    if not index_path.exists():
        report.add("index-mismatch", index_path.name, "the segment has no index")
        return None
    try:
        index_first, entries, torn = read_index(index_path)
    except LogCorrupt as exc:
        report.add(exc.reason, index_path.name, str(exc))
        return None
    if index_first != first:
        report.add("index-mismatch", index_path.name, f"starts at {index_first}, not {first}")
    if torn:
        report.add("truncated", index_path.name, f"ends {torn} bytes into an entry")
    return entries


def _compare_index(
    path: Path,
    first: int,
    records: list[tuple[int, bytes]],
    indexed: list[IndexEntry],
    report: VerifyReport,
    *,
    last: bool,
) -> None:
    # The index was written beside each record as it was appended, so the first record
    # that disagrees with it is where an edit, removal or reordering begins.
    for number, ((position, data), entry) in enumerate(zip(records, indexed, strict=False)):
        if leaf_hash(data) != entry.leaf_hash or position != entry.position:
            report.add(
                "record-altered",
                f"record {first + number} ({path.name} #{number})",
                "differs from the leaf hash and position indexed when it was appended; "
                "records from here on are suspect",
            )
            break
    if len(records) != len(indexed):
        finding = Problem(
            "record-count",
            path.name,
            f"holds {len(records)} whole records, its index lists {len(indexed)}: "
            + ("records were removed or cut off" if len(records) < len(indexed) else "extra data"),
        )
        if last:
            # The writer appends to both files as we read them one after the other.
            report.notes.append(finding)
        else:
            report.add(finding.reason, finding.where, finding.detail)


def _verify_checkpoints(
    reader: LogReader,
    report: VerifyReport,
    public_key: Ed25519PublicKey,
    origin: str,
    roots: dict[int, bytes],
) -> None:
    previous: Checkpoint | None = None
    files = reader.checkpoint_files()
    report.checkpoints = len(files)
    for size, path in files:
        if not is_sealed(path):
            report.add("seal-broken", path.name, "a checkpoint is writable again")
        try:
            checkpoint = open_checkpoint(path.read_text(), public_key, origin=origin)
        except CheckpointError as exc:
            report.add(exc.reason, path.name, str(exc))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            report.add("malformed-checkpoint", path.name, str(exc))
            continue
        if checkpoint.size != size:
            report.add("checkpoint-renamed", path.name, f"signs tree size {checkpoint.size}")
            continue
        if size > report.records:
            report.add(
                "truncated",
                path.name,
                f"signs {size} records, the log holds {report.records}: records were removed",
            )
        elif roots.get(size) != checkpoint.root:
            computed = roots.get(size)
            report.add(
                "root-mismatch",
                path.name,
                f"the first {size} records hash to {_b64(computed) if computed else '?'}, "
                f"the signed root is {_b64(checkpoint.root)}",
            )
        if previous is not None and checkpoint.timestamp_ms < previous.timestamp_ms:
            report.add("time-order", path.name, "signed earlier than the checkpoint before it")
        previous = checkpoint
        report.latest_checkpoint = {
            "size": checkpoint.size,
            "root": _b64(checkpoint.root),
            "time_ms": checkpoint.timestamp_ms,
            "file": path.name,
        }
    if previous is None and report.records:
        report.add("no-checkpoint", "checkpoints/", f"{report.records} records, none signed")
    report.unsigned_records = max(0, report.records - (previous.size if previous else 0))


def _checkpoint_in(note: str) -> Checkpoint:
    """Parse a note's checkpoint without checking the signature (the prover's own sanity check)."""
    return Checkpoint.parse_body(note[: note.rfind("\n\n") + 1])


def _record_fields(data: bytes) -> dict[str, Any] | None:
    """The license record in an entry, for people reading a proof; None if it does not decode."""
    try:
        entry = LogEntry.decode(data)
        event = default_codec().decode_as(entry.event, LicenseIssued)
    except (LogCorrupt, DecodeError):
        return None
    return {
        "kafka": {
            "partition": entry.partition,
            "offset": entry.offset,
            "ts_ms": entry.timestamp_ms,
        },
        **event.to_avro(),
    }


def inclusion_bundle(reader: LogReader, index: int, *, size: int | None = None) -> dict[str, Any]:
    """An inclusion proof for record `index` against a checkpoint (the latest by default)."""
    if size is None:
        latest = reader.latest_checkpoint_note()
        if latest is None:
            raise WormError("the log has no checkpoint yet", reason="no-checkpoint")
        size, note = latest
    else:
        note = reader.checkpoint_note(size)
    if not 0 <= index < size:
        raise WormError(
            f"record {index} is not under the checkpoint of size {size}"
            + (": it is not sealed yet" if index >= size else ""),
            reason="not-checkpointed",
        )
    hashes = reader.leaf_hashes(size)
    data = reader.entry_bytes(index)
    if leaf_hash(data) != hashes[index] or root_hash(hashes) != _checkpoint_in(note).root:
        raise LogCorrupt(
            "the log does not match its checkpoint; run `liveward audit verify`",
            reason="checkpoint-mismatch",
        )
    return {
        "format": PROOF_FORMAT,
        "kind": "inclusion",
        "origin": reader.origin,
        "leaf_index": index,
        "tree_size": size,
        "leaf_data": _b64(data),
        "leaf_hash": _b64(hashes[index]),
        "proof": [_b64(node) for node in inclusion_proof(hashes, index, size)],
        "checkpoint": note,
        "record": _record_fields(data),
    }


def consistency_bundle(reader: LogReader, size1: int, size2: int | None = None) -> dict[str, Any]:
    """A consistency proof between the checkpoints of size1 and size2 (latest by default)."""
    note1 = reader.checkpoint_note(size1)
    if size2 is None:
        latest = reader.latest_checkpoint_note()
        assert latest is not None  # size1's checkpoint exists
        size2, note2 = latest
    else:
        note2 = reader.checkpoint_note(size2)
    if size1 > size2:
        raise WormError(f"--from {size1} is after --to {size2}", reason="size-order")
    hashes = reader.leaf_hashes(size2)
    if (
        root_hash(hashes, size1) != _checkpoint_in(note1).root
        or root_hash(hashes) != _checkpoint_in(note2).root
    ):
        raise LogCorrupt(
            "the log does not match its checkpoints; run `liveward audit verify`",
            reason="checkpoint-mismatch",
        )
    return {
        "format": PROOF_FORMAT,
        "kind": "consistency",
        "origin": reader.origin,
        "size1": size1,
        "size2": size2,
        "proof": [_b64(node) for node in consistency_proof(hashes, size1, size2)],
        "checkpoint1": note1,
        "checkpoint2": note2,
    }


def _field(bundle: Mapping[str, Any], name: str, kind: type) -> Any:
    value = bundle.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProofError(
            f"proof file: {name!r} missing or not {kind.__name__}", reason="bad-proof-file"
        )
    return value


def _decode_hashes(values: Any) -> list[bytes]:
    if not isinstance(values, list):
        raise ProofError("proof file: 'proof' is not a list", reason="bad-proof-file")
    try:
        return [base64.b64decode(value, validate=True) for value in values]
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ProofError(
            f"proof file: a hash is not base64: {exc}", reason="bad-proof-file"
        ) from exc


def check_bundle(
    bundle: Mapping[str, Any], public_key: Ed25519PublicKey, *, name: str | None = None
) -> dict[str, Any]:
    """Check a proof printed by `audit prove` with nothing but the log's public key.

    Sizes and roots are taken from the signed checkpoints, never from the unsigned JSON
    around them. Returns what was proven; raises a WormError (ProofError, CheckpointError)
    naming what failed.
    """
    if bundle.get("format") != PROOF_FORMAT:
        raise ProofError(f"not a {PROOF_FORMAT} file", reason="bad-proof-file")
    kind = bundle.get("kind")
    proof = _decode_hashes(bundle.get("proof"))
    if kind == "inclusion":
        checkpoint = open_checkpoint(_field(bundle, "checkpoint", str), public_key, origin=name)
        if _field(bundle, "tree_size", int) != checkpoint.size:
            raise ProofError("tree_size differs from the signed checkpoint", reason="size-mismatch")
        try:
            data = base64.b64decode(_field(bundle, "leaf_data", str), validate=True)
        except binascii.Error as exc:
            raise ProofError("leaf_data is not base64", reason="bad-proof-file") from exc
        index = _field(bundle, "leaf_index", int)
        verify_inclusion(leaf_hash(data), index, checkpoint.size, proof, checkpoint.root)
        return {
            "ok": True,
            "kind": "inclusion",
            "origin": checkpoint.origin,
            "leaf_index": index,
            "tree_size": checkpoint.size,
            "root": _b64(checkpoint.root),
            "checkpoint_time_ms": checkpoint.timestamp_ms,
            "record": _record_fields(data),
        }
    if kind == "consistency":
        first = open_checkpoint(_field(bundle, "checkpoint1", str), public_key, origin=name)
        second = open_checkpoint(_field(bundle, "checkpoint2", str), public_key, origin=name)
        if first.origin != second.origin:
            raise ProofError("the two checkpoints are of different logs", reason="origin-mismatch")
        if (_field(bundle, "size1", int), _field(bundle, "size2", int)) != (
            first.size,
            second.size,
        ):
            raise ProofError("sizes differ from the signed checkpoints", reason="size-mismatch")
        verify_consistency(first.size, second.size, proof, first.root, second.root)
        return {
            "ok": True,
            "kind": "consistency",
            "origin": first.origin,
            "size1": first.size,
            "size2": second.size,
            "root1": _b64(first.root),
            "root2": _b64(second.root),
        }
    raise ProofError(f"unknown proof kind {kind!r}", reason="bad-proof-file")
