"""The policy file: inheritance, patterns, unlisted content, and refusing what it cannot enforce."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.access.geo import ANONYMIZER_KINDS
from services.access.policy import ContentPolicy, PolicyBook, PolicyError


def test_the_shipped_policy_loads_and_fails_closed(shipped_book: PolicyBook) -> None:
    default = shipped_book.for_content("anything")
    assert default.name == "default"
    assert default.unknown_location == "deny"
    assert default.private_address == "deny"
    assert default.denied_anonymizers == set(ANONYMIZER_KINDS)
    assert {"KP", "IR"} <= default.blocked_countries


def test_a_content_section_overrides_what_it_names_and_inherits_the_rest(
    shipped_book: PolicyBook,
) -> None:
    final = shipped_book.for_content("cup-final")
    assert final.allowed_countries == frozenset({"GB"})
    assert final.blackouts == {"GB-ENG"}
    assert final.ip_binding == "network"
    assert final.blocked_countries == shipped_book.default.blocked_countries


def test_glob_sections_match_after_exact_ids(shipped_book: PolicyBook) -> None:
    trailer = shipped_book.for_content("trailer-2025-07")
    assert trailer.name == "trailer-*"
    assert trailer.device_classes is None
    assert trailer.max_streams is None
    # The anonymizers table merges kind by kind.
    assert trailer.denied_anonymizers == {"tor", "public_proxy"}


def test_the_first_matching_pattern_wins() -> None:
    book = PolicyBook.parse(
        """
        [content."live-*"]
        max_streams = 1
        [content."live-news-*"]
        max_streams = 2
        [content."live-news-1"]
        max_streams = 3
        """
    )
    assert book.for_content("live-news-9").max_streams == 1
    assert book.for_content("live-news-1").max_streams == 3


def test_unlisted_content_can_be_refused() -> None:
    book = PolicyBook.parse('unknown_content = "deny"\n[content.listed]\n')
    assert book.for_content("listed").refuse_as_unknown is False
    assert book.for_content("unlisted").refuse_as_unknown is True


def test_an_empty_file_is_the_fail_closed_defaults() -> None:
    book = PolicyBook.parse("")
    assert book.for_content("x") == ContentPolicy()


def test_values_are_normalised() -> None:
    book = PolicyBook.parse(
        '[default]\nblocked_countries = ["kp"]\nblackouts = ["us-ny"]\ndevice_classes = ["TV"]\n'
    )
    assert book.default.blocked_countries == {"KP"}
    assert book.default.blackouts == {"US-NY"}
    assert book.default.device_classes == frozenset({"tv"})


def test_a_star_reopens_an_inherited_list() -> None:
    book = PolicyBook.parse(
        '[default]\nallowed_countries = ["GB"]\n[content.world]\nallowed_countries = ["*"]\n'
    )
    assert book.for_content("world").allowed_countries is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[default]\nallowed_contries = []\n", "unknown key"),
        ("[default]\nallowed_countries = []\n", "allows nothing"),
        ("[default]\ndevice_classes = []\n", "allows nothing"),
        ('[default]\nblocked_countries = ["United Kingdom"]\n', "not ISO 3166"),
        ('[default]\nblackouts = ["US-"]\n', "not ISO 3166"),
        ('[default]\nblocked_countries = "KP"\n', "list of strings"),
        ("[default]\nmax_streams = 0\n", "positive integer"),
        ("[default]\nmax_streams = true\n", "positive integer"),
        ('[default]\nip_binding = "subnet"\n', "not one of"),
        ('[default]\nunknown_location = "maybe"\n', "not one of"),
        ('[default.anonymizers]\nicloud_relay = "allow"\n', "unknown kind"),
        ('[default]\nanonymizers = "deny"\n', "must be a table"),
        ('unknown_content = "allow"\n', "not one of"),
        ("[defaults]\n", "unknown top-level key"),
        ('content = "x"\n', "one table per content"),
        ("[content]\nx = 1\n", "must be a table"),
        ("[default\n", "not valid TOML"),
    ],
)
def test_a_policy_it_cannot_enforce_is_refused_at_load(text: str, complaint: str) -> None:
    with pytest.raises(PolicyError) as raised:
        PolicyBook.parse(text, "test.toml")
    assert raised.value.reason == "policy-invalid"
    assert complaint in str(raised.value)
    assert "test.toml" in str(raised.value)


def test_load_reads_a_file_and_names_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nip_binding = "none"\n', encoding="utf-8")
    assert PolicyBook.load(path).default.ip_binding == "none"
    assert PolicyBook.load(path).source == str(path)
    with pytest.raises(PolicyError) as raised:
        PolicyBook.load(tmp_path / "missing.toml")
    assert raised.value.reason == "policy-missing"
