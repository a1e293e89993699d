"""The per-epoch pseudonym memo: same answers as computing them, bounded, per epoch."""

from __future__ import annotations

import pytest

from services.bridge import pseudonyms
from services.bridge.epochs import EpochKey
from services.bridge.pseudonyms import EpochPseudonyms, reference_mac


def _key(epoch: str, key: bytes) -> EpochKey:
    return EpochKey(epoch=epoch, key=key)


def test_remembered_pseudonyms_equal_the_definition() -> None:
    names = EpochPseudonyms(_key("e1", b"k" * 32))
    for _ in range(3):
        assert names.viewer("alice") == reference_mac(b"k" * 32, "viewer", "alice")
        assert names.session("alice") == reference_mac(b"k" * 32, "session", "alice")
    assert names.viewer("alice") != names.session("alice")


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pseudonyms, "MEMO_ENTRIES", 10)
    names = EpochPseudonyms(_key("e1", b"k" * 32))
    for n in range(25):
        assert names.viewer(f"v{n}") == reference_mac(b"k" * 32, "viewer", f"v{n}")
    assert len(names._memo) <= 10


def test_another_epoch_remembers_nothing_of_the_first() -> None:
    first = EpochPseudonyms(_key("e1", b"k" * 32))
    second = EpochPseudonyms(_key("e2", b"j" * 32))
    assert first.viewer("alice") != second.viewer("alice")
    assert second.viewer("alice") == reference_mac(b"j" * 32, "viewer", "alice")
