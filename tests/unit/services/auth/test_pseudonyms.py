"""Viewer and device pseudonyms: stable under one key, different under another, never mixed."""

from __future__ import annotations

import pytest

from services.auth.pseudonyms import Pseudonyms


def test_a_reference_is_stable_hex_and_depends_on_the_key() -> None:
    one, other = Pseudonyms(b"key-one"), Pseudonyms(b"key-two")
    ref = one.viewer_ref("viewer-1")
    assert ref == one.viewer_ref("viewer-1")
    assert len(ref) == 64 and int(ref, 16) >= 0
    assert ref != other.viewer_ref("viewer-1")
    assert "viewer-1" not in ref


def test_a_viewer_and_a_device_with_the_same_id_get_different_references() -> None:
    pseudonyms = Pseudonyms(b"key")
    assert pseudonyms.viewer_ref("abc") != pseudonyms.device_ref("abc")


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Pseudonyms(b"")
