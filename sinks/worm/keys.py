"""The log's Ed25519 signing key on disk: created on first use, public half exported beside it.

`<state>/worm/log-signing-key.pem` holds the private key (PKCS#8 PEM, mode 0600) and
`log-signing-key.pub` the public key (SubjectPublicKeyInfo PEM) a third party needs to
check checkpoints and proofs. A public key may also be given as a C2SP verifier key
string (`name+keyid+base64`), which additionally pins the log's name.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from liveward.settings import Settings
from sinks.worm.checkpoint import parse_verifier_key
from sinks.worm.errors import CheckpointError, SigningKeyError

SIGNING_KEY_NAME = "log-signing-key.pem"
PUBLIC_KEY_NAME = "log-signing-key.pub"


def worm_dir(settings: Settings) -> Path:
    return settings.state_dir / "worm"


def default_log_dir(settings: Settings) -> Path:
    return worm_dir(settings) / "log"


def signing_key_path(settings: Settings) -> Path:
    return worm_dir(settings) / SIGNING_KEY_NAME


def public_key_path(settings: Settings) -> Path:
    return worm_dir(settings) / PUBLIC_KEY_NAME


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at path, generated (and its public key exported) if there is none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            # O_EXCL: two processes starting at once must not each make (and use) a key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
    key = _read_private_key(path)
    public = path.with_name(path.name.removesuffix(".pem") + ".pub")
    pem_public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if not public.exists() or public.read_bytes() != pem_public:
        public.write_bytes(pem_public)
    return key


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the log signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> tuple[Ed25519PublicKey, str | None]:
    """(key, log name or None) from a PEM public key or a C2SP verifier key file."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the public key {path}: {exc}") from exc
    if text.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(text)
        except ValueError as exc:
            raise SigningKeyError(f"{path} is not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"{path} is not an Ed25519 public key")
        return key, None
    try:
        name, key = parse_verifier_key(text.decode())
    except (CheckpointError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"{path} is neither a PEM nor a verifier key: {exc}") from exc
    return key, name
