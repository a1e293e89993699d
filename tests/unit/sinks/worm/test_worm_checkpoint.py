"""Signed checkpoints: the C2SP note format (as Go's sumdb/note reads it) and tamper checks."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sinks.worm.checkpoint import (
    Checkpoint,
    open_checkpoint,
    open_note,
    parse_verifier_key,
    sign_checkpoint,
    verifier_key,
)
from sinks.worm.errors import CheckpointError
from sinks.worm.merkle import leaf_hash

# The example note from golang.org/x/mod/sumdb/note's documentation, signed by Go.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n"
)
ROOT = leaf_hash(b"license")


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_note_signed_by_go_opens() -> None:
    name, public_key = parse_verifier_key(GO_VKEY)
    assert open_note(GO_NOTE, public_key, name).startswith("If you think")


def test_our_verifier_key_is_the_c2sp_string(key: Ed25519PrivateKey) -> None:
    name, public_key = parse_verifier_key(verifier_key("liveward/log", key.public_key()))
    assert name == "liveward/log"
    assert public_key == key.public_key()


def test_signed_checkpoint_round_trips(key: Ed25519PrivateKey) -> None:
    checkpoint = Checkpoint("liveward/license-log/eu-west", 1024, ROOT, 1_718_000_000_000)
    note = sign_checkpoint(checkpoint, key)
    assert note.startswith(
        f"liveward/license-log/eu-west\n1024\n{base64.b64encode(ROOT).decode()}\n"
        "time 1718000000000\n\n\u2014 liveward/license-log/eu-west "
    )
    assert open_checkpoint(note, key.public_key()) == checkpoint
    assert open_checkpoint(note, key.public_key(), origin=checkpoint.origin) == checkpoint


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n1024\n", "\n1025\n"),
        ("time 1718000000000", "time 1718000000001"),
        ("eu-west", "us-east"),
    ],
)
def test_an_edited_checkpoint_fails_its_signature(
    key: Ed25519PrivateKey, old: str, new: str
) -> None:
    note = sign_checkpoint(
        Checkpoint("liveward/license-log/eu-west", 1024, ROOT, 1_718_000_000_000), key
    )
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note.replace(old, new, 1), key.public_key())
    assert caught.value.reason in {"bad-signature", "unsigned"}


def test_another_key_is_refused(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint("log", 1, ROOT, 0), key)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note, Ed25519PrivateKey.generate().public_key())
    assert caught.value.reason == "unsigned"


def test_a_checkpoint_for_another_log_is_refused(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint("log-a", 1, ROOT, 0), key)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note, key.public_key(), origin="log-b")
    assert caught.value.reason == "origin-mismatch"


@pytest.mark.parametrize(
    "body",
    [
        "log\n1\nAAAA\ntime 0\n",
        "log\n01\n" + base64.b64encode(ROOT).decode() + "\ntime 0\n",
        "log\n1\n" + base64.b64encode(ROOT).decode() + "\n",
        "log\n1\n" + base64.b64encode(ROOT).decode() + "\ntime 0",
        "\n1\n" + base64.b64encode(ROOT).decode() + "\ntime 0\n",
    ],
)
def test_malformed_bodies_are_refused(body: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        Checkpoint.parse_body(body)
    assert caught.value.reason == "malformed-checkpoint"
