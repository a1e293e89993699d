"""The proof verifier against the RFC 6962 vectors: every happy path passes, every wantErr fails.

The vectors live outside the project (`../shared/data/rfc6962-vectors/`, or the directory
`LIVEWARD_SHARED_DATA` points at); where they are absent the tests skip and say why.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from sinks.worm.errors import ProofError
from sinks.worm.merkle import verify_consistency, verify_inclusion


def _vector_dir() -> Path:
    shared = os.environ.get("LIVEWARD_SHARED_DATA")
    root = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared" / "data"
    return root / "rfc6962-vectors"


VECTORS = _vector_dir()


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json")) if VECTORS.is_dir() else []


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_b64(node) for node in vector["proof"] or []]


def _accepts(check: Any) -> bool:
    try:
        check()
    except ProofError:
        return False
    return True


needs_vectors = pytest.mark.skipif(
    not VECTORS.is_dir(),
    reason=f"RFC 6962 vectors not found at {VECTORS} (set LIVEWARD_SHARED_DATA to their parent)",
)


@needs_vectors
def test_the_vector_set_is_complete() -> None:
    # A partial copy would let the verifier pass while skipping whole classes of attack.
    for kind in ("inclusion", "consistency"):
        vectors = [json.loads(path.read_text()) for path in _files(kind)]
        assert len(vectors) >= 90, kind
        assert any(v["wantErr"] for v in vectors) and not all(v["wantErr"] for v in vectors)


@needs_vectors
@pytest.mark.parametrize("path", _files("inclusion"), ids=_id)
def test_inclusion_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    accepted = _accepts(
        lambda: verify_inclusion(
            _b64(vector["leafHash"]),
            vector["leafIdx"],
            vector["treeSize"],
            _proof(vector),
            _b64(vector["root"]),
        )
    )
    assert accepted is not vector["wantErr"], vector["desc"]


@needs_vectors
@pytest.mark.parametrize("path", _files("consistency"), ids=_id)
def test_consistency_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    accepted = _accepts(
        lambda: verify_consistency(
            vector["size1"],
            vector["size2"],
            _proof(vector),
            _b64(vector["root1"]),
            _b64(vector["root2"]),
        )
    )
    assert accepted is not vector["wantErr"], vector["desc"]
