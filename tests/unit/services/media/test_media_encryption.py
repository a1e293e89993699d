"""HLS AES-128 packaging: key periods of segments, key URIs, key info, ffmpeg's command."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveward.settings import MediaSettings, ServiceSettings, Settings
from liveward.topology import INSTANCE_PORT_STEP
from services.media.encryption import (
    KeyRotation,
    is_encrypted_segment,
    key_info_text,
    key_period,
    license_base_url,
    packaged_seq,
    packager_argv,
)


def test_a_segment_s_key_period_is_the_period_its_first_moment_falls_in() -> None:
    # 2-s segments, 10-s periods: five segments per period.
    assert [key_period(seq, 2.0, 10) for seq in range(0, 11)] == [0] * 5 + [1] * 5 + [2]
    # 6-s segments straddle 10-s periods: the start decides.
    assert key_period(1, 6.0, 10) == 0  # 6..12 s
    assert key_period(2, 6.0, 10) == 1  # 12..18 s


def test_the_key_uri_names_the_region_s_license_service_and_the_period() -> None:
    settings = Settings(regions=("eu-west", "us-east"), services=ServiceSettings(license_port=9082))
    # Instance i of a per-region service listens INSTANCE_PORT_STEP * i further on.
    assert license_base_url(settings, "us-east") == f"http://127.0.0.1:{9082 + INSTANCE_PORT_STEP}"
    rotation = KeyRotation(license_base_url(settings, "eu-west"), "match", 2.0, 10)
    assert rotation.uri(12) == "http://127.0.0.1:9082/v1/keys/match/2"


def test_the_key_info_has_no_iv_line_so_the_iv_is_the_media_sequence() -> None:
    text = key_info_text("http://l/v1/keys/c/7", Path("/private/c-7.key"))
    assert text.splitlines() == ["http://l/v1/keys/c/7", "/private/c-7.key"]
    with pytest.raises(ValueError):
        key_info_text("http://l/\n/evil", Path("/k"))


def test_the_packager_copies_and_rekeys_at_every_segment() -> None:
    media = MediaSettings(source="ffmpeg")
    argv = packager_argv(
        media, start_number=901, key_info=Path("/w/key-info.txt"), out_dir=Path("/w")
    )
    assert argv[argv.index("-c") + 1] == "copy"
    assert "-copyts" in argv
    assert argv[argv.index("-i") + 1] == "pipe:0"
    assert argv[argv.index("-hls_segment_type") + 1] == "mpegts"
    assert argv[argv.index("-hls_key_info_file") + 1] == "/w/key-info.txt"
    assert "periodic_rekey" in argv[argv.index("-hls_flags") + 1].split("+")
    assert argv[argv.index("-start_number") + 1] == "901"
    assert argv[argv.index("-hls_segment_filename") + 1] == "/w/out-%d.ts"


def test_finished_segments_and_encrypted_bodies_are_recognised() -> None:
    assert packaged_seq("out-901.ts") == 901
    assert packaged_seq("out-901.ts.tmp") is None
    assert packaged_seq("packager.m3u8") is None
    assert is_encrypted_segment(bytes(32))
    assert not is_encrypted_segment(b"")
    assert not is_encrypted_segment(bytes(188))
