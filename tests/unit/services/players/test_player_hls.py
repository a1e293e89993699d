"""Reading multivariant playlists, media playlists and steering manifests."""

from __future__ import annotations

import orjson
import pytest

from services.media.encryption import KeyRotation
from services.media.manifest import (
    LiveWindow,
    Variant,
    render_media_playlist,
    render_multivariant_playlist,
)
from services.players.errors import PlaylistError
from services.players.hls import (
    attributes,
    parse_media_playlist,
    parse_multivariant,
    parse_steering_manifest,
)


def test_attribute_lists_keep_commas_inside_quotes() -> None:
    assert attributes('BANDWIDTH=3000000,CODECS="avc1.4d401f,mp4a.40.2",PATHWAY-ID="eu.cdn-a"') == {
        "BANDWIDTH": "3000000",
        "CODECS": "avc1.4d401f,mp4a.40.2",
        "PATHWAY-ID": "eu.cdn-a",
    }


def test_what_the_origin_renders_is_what_the_player_reads() -> None:
    text = render_multivariant_playlist(
        "match",
        [
            Variant("eu-west.cdn-a", "http://127.0.0.1:8200"),
            Variant("us-east.cdn-b", "http://127.0.0.1:8203"),
        ],
        steering_uri="http://127.0.0.1:8084/v1/steering/match",
        default_pathway="us-east.cdn-b",
        bandwidth_bps=3_000_000,
    )
    master = parse_multivariant(text, "http://127.0.0.1:8200/live/match/master.m3u8")
    assert master.steering_uri == "http://127.0.0.1:8084/v1/steering/match"
    assert master.default_pathway == "us-east.cdn-b"
    assert master.pathways == ("eu-west.cdn-a", "us-east.cdn-b")
    assert master.media_urls["us-east.cdn-b"] == "http://127.0.0.1:8203/live/match/media.m3u8"
    assert master.bandwidth_bps == 3_000_000  # what the players report as CMCD br

    media = parse_media_playlist(
        render_media_playlist(LiveWindow(40, 45, 0), segment_seconds=2.0, window=6)
    )
    assert (media.first_seq, media.last_seq, media.target_duration) == (40, 45, 2.0)
    assert media.uri(43) == "seg-43.ts"
    assert media.duration(43) == 2.0
    assert media.has(45)
    assert not media.has(46)


def test_relative_uris_resolve_against_the_playlist() -> None:
    text = (
        '#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI="/steer"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=1\nv/media.m3u8\n"
    )
    master = parse_multivariant(text, "http://h:1/live/x/master.m3u8")
    assert master.steering_uri == "http://h:1/steer"
    assert master.media_urls == {".": "http://h:1/live/x/v/media.m3u8"}
    assert master.default_pathway is None
    assert master.bandwidth_bps == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "malformed-media-playlist"),
        ("#EXTM3U\n#EXTINF:2.0,\nseg-1.ts\n", "malformed-media-playlist"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg-1.ts\n", "malformed-media-playlist"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:x\n", "malformed-media-playlist"),
    ],
)
def test_unusable_media_playlists_are_refused(text: str, reason: str) -> None:
    with pytest.raises(PlaylistError) as caught:
        parse_media_playlist(text)
    assert caught.value.reason == reason


def test_a_steering_manifest_gives_ttl_priority_and_reload_uri() -> None:
    body = orjson.dumps(
        {"VERSION": 1, "TTL": 2, "RELOAD-URI": "/v1/steering/match?session=1",
         "PATHWAY-PRIORITY": ["us-east.cdn-a", "eu-west.cdn-a"]}
    )  # fmt: skip
    manifest = parse_steering_manifest(body, "http://127.0.0.1:8084/v1/steering/match")
    assert manifest.ttl_s == 2.0
    assert manifest.priority == ("us-east.cdn-a", "eu-west.cdn-a")
    assert manifest.reload_uri == "http://127.0.0.1:8084/v1/steering/match?session=1"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        orjson.dumps({"VERSION": 2, "TTL": 2, "PATHWAY-PRIORITY": ["a"]}),
        orjson.dumps({"VERSION": 1, "TTL": 0, "PATHWAY-PRIORITY": ["a"]}),
        orjson.dumps({"VERSION": 1, "TTL": True, "PATHWAY-PRIORITY": ["a"]}),
        orjson.dumps({"VERSION": 1, "TTL": 2, "PATHWAY-PRIORITY": []}),
        orjson.dumps({"VERSION": 1, "TTL": 2, "PATHWAY-PRIORITY": [""]}),
        orjson.dumps({"VERSION": 1, "TTL": 2, "PATHWAY-PRIORITY": ["a"], "RELOAD-URI": 5}),
    ],
)
def test_unusable_steering_manifests_are_refused(payload: bytes) -> None:
    with pytest.raises(PlaylistError) as caught:
        parse_steering_manifest(payload, "http://h:1/s")
    assert caught.value.reason == "malformed-steering-manifest"


def test_players_read_the_key_each_segment_is_encrypted_under() -> None:
    keys = KeyRotation("http://l", "m", 2.0, 10)
    text = render_media_playlist(LiveWindow(103, 106, 0), segment_seconds=2.0, window=6, keys=keys)
    playlist = parse_media_playlist(text)
    assert [playlist.key_uri(seq) for seq in range(103, 107)] == [
        "http://l/v1/keys/m/20",
        "http://l/v1/keys/m/20",
        "http://l/v1/keys/m/21",
        "http://l/v1/keys/m/21",
    ]
    clear = parse_media_playlist(
        text.replace('METHOD=AES-128,URI="http://l/v1/keys/m/21"', "METHOD=NONE")
    )
    assert clear.key_uri(105) is None
    with pytest.raises(PlaylistError) as refused:
        parse_media_playlist(text.replace("METHOD=AES-128", "METHOD=SAMPLE-AES"))
    assert refused.value.reason == "unsupported-key"
