"""`liveward audit` on real logs on disk: tampering of every kind is caught and named; proofs check.

Sealed files are read-only, so each tamper first does what an intruder would: chmod u+w.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from liveward.commands.audit import app
from sinks.worm.checkpoint import verifier_key
from sinks.worm.entries import LogEntry
from sinks.worm.log import (
    FILE_HEADER,
    INDEX_MAGIC,
    SEGMENT_MAGIC,
    IndexEntry,
    LocalLog,
    scan_segment,
)
from sinks.worm.merkle import leaf_hash

OpenLog = Callable[..., LocalLog]
Entry = Callable[..., LogEntry]
RECORDS = 10


@pytest.fixture
def log_dir(open_log: OpenLog, license_entry: Entry) -> Path:
    """Ten records in segments of four (two sealed), checkpoints at 4, 8 and 10."""
    with open_log(segment_records=4) as log:
        for offset in range(RECORDS):
            log.append([license_entry(offset * 2)])
        log.checkpoint()
        return log.directory


@pytest.fixture
def public_key(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "log-signing-key.pub"
    path.write_bytes(
        signing_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def audit(*args: str | Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def verify(log_dir: Path, public_key: Path) -> tuple[int, dict[str, Any]]:
    return audit("verify", "--log", log_dir, "--public-key", public_key)


def reasons(report: dict[str, Any]) -> set[str]:
    return {problem["reason"] for problem in report["problems"]}


def segment(log_dir: Path, number: int) -> Path:
    path = sorted((log_dir / "segments").glob("*.seg"))[number]
    os.chmod(path, 0o644)
    return path


def rewrite_records(path: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    scan = scan_segment(path)
    records = change([data for _, data in scan.records])
    body = b"".join(struct.pack(">I", len(r)) + r for r in records)
    path.write_bytes(FILE_HEADER.pack(SEGMENT_MAGIC, scan.first_index) + body)


def test_an_untouched_log_verifies(log_dir: Path, public_key: Path) -> None:
    code, report = verify(log_dir, public_key)
    assert code == 0, report["problems"]
    assert report["ok"] is True
    assert report["records"] == RECORDS
    assert report["segments"] == 3
    assert report["checkpoints"] == 3
    assert report["latest_checkpoint"]["size"] == RECORDS
    assert report["unsigned_records"] == 0


def test_an_altered_byte_in_a_record_is_found(log_dir: Path, public_key: Path) -> None:
    path = segment(log_dir, 0)
    data = bytearray(path.read_bytes())
    position = scan_segment(path).records[1][0]
    data[position + 4 + 60] ^= 0x01
    path.write_bytes(bytes(data))
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert {"record-altered", "root-mismatch"} <= reasons(report)
    altered = next(p for p in report["problems"] if p["reason"] == "record-altered")
    assert altered["where"].startswith("record 1 ")


def test_an_altered_record_with_a_matching_index_still_fails_the_signed_root(
    log_dir: Path, public_key: Path
) -> None:
    # The intruder rebuilds the index too; only the signed roots stand in the way.
    path = segment(log_dir, 1)
    rewrite_records(path, lambda rs: [rs[0][:-1] + bytes([rs[0][-1] ^ 1]), *rs[1:]])
    scan = scan_segment(path)
    index = path.with_suffix(".idx")
    os.chmod(index, 0o644)
    index.write_bytes(
        FILE_HEADER.pack(INDEX_MAGIC, scan.first_index)
        + b"".join(
            IndexEntry(leaf_hash(data), position, 0, LogEntry.decode(data).offset).encode()
            for position, data in scan.records
        )
    )
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert reasons(report) == {"root-mismatch", "seal-broken"}


def test_a_removed_record_is_found(log_dir: Path, public_key: Path) -> None:
    rewrite_records(segment(log_dir, 1), lambda rs: [rs[0], *rs[2:]])
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert {"record-count", "root-mismatch"} <= reasons(report)


def test_two_reordered_records_are_found(log_dir: Path, public_key: Path) -> None:
    rewrite_records(segment(log_dir, 0), lambda rs: [rs[0], rs[2], rs[1], rs[3]])
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert {"offset-order", "record-altered", "root-mismatch"} <= reasons(report)


def test_a_file_cut_inside_a_record_is_found(log_dir: Path, public_key: Path) -> None:
    path = segment(log_dir, 2)
    with path.open("r+b") as out:
        out.truncate(path.stat().st_size - 7)
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert "truncated" in reasons(report)


def test_a_file_cut_at_a_record_boundary_is_found(log_dir: Path, public_key: Path) -> None:
    rewrite_records(segment(log_dir, 2), lambda rs: rs[:-1])
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert "truncated" in reasons(report)
    cut = next(p for p in report["problems"] if p["reason"] == "truncated")
    assert "signs 10 records, the log holds 9" in cut["detail"]
    assert [n["reason"] for n in report["notes"]] == ["record-count"]


def test_a_record_being_written_while_verifying_is_only_a_note(
    log_dir: Path, public_key: Path, open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=4) as log:
        log.append([license_entry(100)])
    path = segment(log_dir, 2)
    with path.open("ab") as out:
        out.write(struct.pack(">I", 300) + b"half of it")
    code, report = verify(log_dir, public_key)
    assert code == 0, report["problems"]
    assert [n["reason"] for n in report["notes"]] == ["truncated"]
    assert report["unsigned_records"] == 1


def test_a_removed_segment_is_found(log_dir: Path, public_key: Path) -> None:
    path = segment(log_dir, 1)
    path.unlink()
    path.with_suffix(".idx").unlink()
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert {"segment-gap", "truncated"} <= reasons(report)


@pytest.mark.parametrize(
    ("line", "edit"),
    [
        (1, lambda v: str(int(v) - 1)),
        (2, lambda v: base64.b64encode(bytes(32)).decode()),
        (3, lambda v: "time 1"),
    ],
    ids=["size", "root", "time"],
)
def test_an_edited_checkpoint_is_found(
    log_dir: Path, public_key: Path, line: int, edit: Callable[[str], str]
) -> None:
    note = sorted((log_dir / "checkpoints").glob("*.note"))[1]
    os.chmod(note, 0o644)
    lines = note.read_text().split("\n")
    lines[line] = edit(lines[line])
    note.write_text("\n".join(lines))
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert {"bad-signature", "seal-broken"} <= reasons(report)


def test_a_checkpoint_signed_by_another_key_is_found(
    log_dir: Path, tmp_path: Path, public_key: Path
) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    code, report = verify(log_dir, other)
    assert code == 1
    assert {"key-mismatch", "unsigned"} <= reasons(report)


def test_an_unsealed_segment_is_reported(log_dir: Path, public_key: Path) -> None:
    segment(log_dir, 0)
    code, report = verify(log_dir, public_key)
    assert code == 1
    assert reasons(report) == {"seal-broken"}


def test_records_after_the_last_checkpoint_are_counted_as_unsigned(
    log_dir: Path, public_key: Path, open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=4) as log:
        log.append([license_entry(100)])
    code, report = verify(log_dir, public_key)
    assert code == 0
    assert report["unsigned_records"] == 1


def test_an_inclusion_proof_checks_from_the_public_key_alone(
    log_dir: Path, public_key: Path, tmp_path: Path
) -> None:
    code, bundle = audit("prove", "--record", "5", "--log", log_dir)
    assert code == 0
    assert bundle["tree_size"] == RECORDS
    assert bundle["record"]["license_id"] == "lic-10"
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(bundle))
    code, result = audit("check-proof", proof_file, "--public-key", public_key)
    assert code == 0, result
    assert result["ok"] is True
    assert result["leaf_index"] == 5
    assert result["record"]["kafka"]["offset"] == 10


def test_a_proof_checks_against_a_verifier_key_too(
    log_dir: Path, signing_key: Ed25519PrivateKey, origin: str, tmp_path: Path
) -> None:
    vkey = tmp_path / "log.vkey"
    vkey.write_text(verifier_key(origin, signing_key.public_key()) + "\n")
    _, bundle = audit("prove", "--record", "0", "--size", "4", "--log", log_dir)
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(bundle))
    code, result = audit("check-proof", proof_file, "--public-key", vkey)
    assert code == 0, result
    assert result["tree_size"] == 4


def _tamper_leaf(b: dict[str, Any]) -> None:
    entry = bytearray(base64.b64decode(b["leaf_data"]))
    entry[-1] ^= 1
    b["leaf_data"] = base64.b64encode(bytes(entry)).decode()


def _tamper_proof(b: dict[str, Any]) -> None:
    b["proof"][0] = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_leaf, "root-mismatch"),
        (_tamper_proof, "root-mismatch"),
        (lambda b: b.update(leaf_index=4), "root-mismatch"),
        (lambda b: b.update(tree_size=9), "size-mismatch"),
        (
            lambda b: b.update(checkpoint=b["checkpoint"].replace("\n10\n", "\n11\n")),
            "bad-signature",
        ),
        (lambda b: b.update(proof=b["proof"][:-1]), "proof-too-short"),
    ],
    ids=["leaf", "proof", "index", "size", "checkpoint", "short"],
)
def test_a_tampered_inclusion_proof_fails(
    log_dir: Path,
    public_key: Path,
    tmp_path: Path,
    tamper: Callable[[dict[str, Any]], None],
    reason: str,
) -> None:
    _, bundle = audit("prove", "--record", "5", "--log", log_dir)
    tamper(bundle)
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(bundle))
    code, result = audit("check-proof", proof_file, "--public-key", public_key)
    assert code == 1
    assert result == {"ok": False, "reason": reason, "detail": result["detail"]}


def test_a_consistency_proof_checks_and_a_tampered_one_fails(
    log_dir: Path, public_key: Path, tmp_path: Path
) -> None:
    code, bundle = audit("prove", "--from", "4", "--to", "10", "--log", log_dir)
    assert code == 0
    proof_file = tmp_path / "consistency.json"
    proof_file.write_text(json.dumps(bundle))
    code, result = audit("check-proof", proof_file, "--public-key", public_key)
    assert code == 0, result
    assert (result["size1"], result["size2"]) == (4, 10)

    bundle["proof"][-1] = base64.b64encode(bytes(32)).decode()
    proof_file.write_text(json.dumps(bundle))
    code, result = audit("check-proof", proof_file, "--public-key", public_key)
    assert code == 1
    assert result["reason"] == "root-mismatch"


def test_consistency_to_the_latest_checkpoint_by_default(log_dir: Path) -> None:
    code, bundle = audit("prove", "--from", "8", "--log", log_dir)
    assert code == 0
    assert (bundle["size1"], bundle["size2"]) == (8, 10)


def test_proofs_are_only_against_signed_checkpoints(
    log_dir: Path, open_log: OpenLog, license_entry: Entry
) -> None:
    with open_log(segment_records=4) as log:
        log.append([license_entry(100)])
    with pytest.raises(Exception, match="not sealed yet"):
        audit("prove", "--record", "10", "--log", log_dir)
    with pytest.raises(Exception, match="no checkpoint at size 5; checkpoints: 4, 8, 10"):
        audit("prove", "--from", "5", "--log", log_dir)


def test_prove_needs_exactly_one_kind(log_dir: Path) -> None:
    assert audit("prove", "--log", log_dir)[0] == 2
    assert audit("prove", "--record", "1", "--from", "4", "--log", log_dir)[0] == 2
