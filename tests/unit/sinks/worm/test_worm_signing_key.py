"""The log signing key on disk: made once, private (0600), its public half exported beside it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from sinks.worm.checkpoint import verifier_key
from sinks.worm.errors import SigningKeyError
from sinks.worm.keys import load_or_create_signing_key, load_public_key


def test_the_key_is_created_once_private_and_its_public_key_exported(tmp_path: Path) -> None:
    path = tmp_path / "worm" / "log-signing-key.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_signing_key(path).public_key() == key.public_key()
    public, name = load_public_key(path.with_suffix(".pub"))
    assert public == key.public_key()
    assert name is None


def test_a_verifier_key_file_names_the_log(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path / "k.pem")
    vkey = tmp_path / "log.vkey"
    vkey.write_text(verifier_key("liveward/license-log/eu-west", key.public_key()))
    public, name = load_public_key(vkey)
    assert (public, name) == (key.public_key(), "liveward/license-log/eu-west")


@pytest.mark.parametrize("content", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n"])
def test_an_unreadable_public_key_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pub"
    path.write_bytes(content)
    with pytest.raises(SigningKeyError):
        load_public_key(path)
    with pytest.raises(SigningKeyError):
        load_public_key(tmp_path / "missing.pub")
