"""The CMCD parser (RFC 8941 dictionaries) and the mapping from CMCD keys to a sample."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.bridge.cmcd import (
    CmcdSyntaxError,
    CmcdValue,
    Token,
    cmcd_sample,
    parse_payload,
    parse_request,
)
from services.bridge.samples import Invalid, SampleWindow
from tests.unit.services.bridge.conftest import NOW_MS

WINDOW = SampleWindow.around(NOW_MS, max_age_s=3_600, max_skew_s=60)
# The example of CTA-5004, section 3.2 (query argument form, before URL encoding).
SPEC_EXAMPLE = (
    'bl=21300,br=3200,bs,cid="faec5fc2-ac30-11eabb37-0242ac130002",d=4004,dl=18500,'
    'mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",nrr="12323-48763",ot=v,pr=1.08,rtp=12000,'
    'sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000'
)


def members(text: str) -> dict[str, CmcdValue]:
    return parse_payload(text)


def test_the_spec_example_parses_with_its_types() -> None:
    read = members(SPEC_EXAMPLE)

    assert read["bl"] == 21300 and read["br"] == 3200 and read["pr"] == 1.08
    assert read["bs"] is True and read["su"] is True
    assert read["cid"] == "faec5fc2-ac30-11eabb37-0242ac130002"
    assert type(read["cid"]) is str
    assert read["ot"] == "v" and type(read["ot"]) is Token
    assert read["nrr"] == "12323-48763"


def test_strings_may_hold_commas_quotes_and_backslashes() -> None:
    read = members(r'nor="a,b\"c\\d",sid="x"')

    assert read["nor"] == 'a,b"c\\d'


def test_booleans_and_lists_in_their_structured_field_forms() -> None:
    read = members('a=?0,b=?1,c,d=("x" y),e=-12,f=0.5')

    assert read == {"a": False, "b": True, "c": True, "d": ("x", "y"), "e": -12, "f": 0.5}


@pytest.mark.parametrize(
    "text",
    [
        "Br=1",  # keys are lowercase
        "1b=1",
        "br=1,",
        ",br=1",
        "br=1,,bl=2",
        "br==1",
        "br=1 bl=2",
        "br=1;p=2",  # CMCD has no parameters
        'sid="open',
        'sid="a\\nb"',
        'sid="caf\u00e9"',
        "br=1234567890123456",  # sf-integer: 15 digits at most
        "pr=1.2345",
        "br=?2",
        "br=1,br=2",
        'd=("a" 1)',
    ],
)
def test_malformed_payloads_are_refused(text: str) -> None:
    with pytest.raises(CmcdSyntaxError):
        parse_payload(text)


def test_a_payload_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(CmcdSyntaxError, match="limited"):
        parse_payload("br=1," * 2_000)


def test_the_query_argument_and_headers_form_one_dictionary() -> None:
    read = parse_request(['sid="s"'], ["br=1,ot=v", "bl=100"])

    assert read == {"sid": "s", "br": 1, "ot": "v", "bl": 100}
    with pytest.raises(CmcdSyntaxError, match="twice"):
        parse_request(['sid="s"'], ['sid="t"'])


def sample_of(text: str) -> tuple[object, list[str]]:
    return cmcd_sample(parse_payload(text), received_ms=NOW_MS, window=WINDOW)


def test_the_spec_example_maps_to_a_sample() -> None:
    sample, unknown = cmcd_sample(parse_payload(SPEC_EXAMPLE), received_ms=NOW_MS, window=WINDOW)

    assert unknown == []
    assert sample.session == sample.viewer == "6e2fb550-c457-11e9-bb97-0800200c9a66"
    assert sample.content == "faec5fc2-ac30-11eabb37-0242ac130002"
    assert (sample.bitrate_kbps, sample.buffer_ms) == (3200, 21300)
    # su: the object is needed for start-up or a seek, so no steady playback is counted.
    assert sample.play_ms == 0
    assert (sample.rebuffer_count, sample.rebuffer_ms) == (1, 0)
    assert sample.sampled_at == NOW_MS
    assert (sample.cdn, sample.serving_region, sample.sample_id) == ("unknown", None, None)
    assert (sample.object_type, sample.throughput_kbps, sample.top_bitrate_kbps) == (
        "v",
        48100,
        6000,
    )


@pytest.mark.parametrize(("object_type", "bitrate", "play"), [
    ("v", 3200, 4004), ("av", 3200, 4004), (None, 3200, 4004),
    ("a", 0, 0), ("m", 0, 0), ("i", 0, 0), ("k", 0, 0),
])  # fmt: skip
def test_only_video_objects_give_bitrate_and_play_time(
    object_type: str | None, bitrate: int, play: int
) -> None:
    text = 'br=3200,d=4004,sid="s"' + (f",ot={object_type}" if object_type else "")
    sample, _ = cmcd_sample(parse_payload(text), received_ms=NOW_MS, window=WINDOW)

    assert (sample.bitrate_kbps, sample.play_ms) == (bitrate, play)


def test_v2_and_liveward_keys_fill_the_rest() -> None:
    text = (
        f'sid="s",bsd=1500,msd=820,ts={NOW_MS - 5_000},sn=42,com.liveward-viewer="v-1",'
        'com.liveward-cdn=cdn-b,com.liveward-region="us-east",com.liveward-error=E_NET,'
        "com.other-thing=?1,zz=1"
    )
    sample, unknown = cmcd_sample(parse_payload(text), received_ms=NOW_MS, window=WINDOW)

    assert (sample.rebuffer_ms, sample.startup_ms, sample.sampled_at) == (1500, 820, NOW_MS - 5_000)
    assert (sample.sample_id, sample.viewer, sample.cdn) == ("42", "v-1", "cdn-b")
    assert (sample.serving_region, sample.error_code) == ("us-east", "E_NET")
    assert unknown == ["com.other-thing", "zz"]


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("br=1", "sid", "missing-field"),
        ("sid=token", "sid", "wrong-type"),
        ('sid=""', "sid", "bad-length"),
        (f'sid="{"x" * 65}"', "sid", "bad-length"),
        ('sid="s",br=1.5', "br", "wrong-type"),
        ('sid="s",br=-1', "br", "negative-value"),
        ('sid="s",br=9999999999', "br", "out-of-range"),
        ('sid="s",mtp=9999999999', "mtp", "out-of-range"),
        ('sid="s",bs=1', "bs", "wrong-type"),
        ('sid="s",ot="v"', "ot", "bad-value"),
        ('sid="s",st=x', "st", "bad-value"),
        ('sid="s",pr=-1.0', "pr", "negative-value"),
        ('sid="s",v=3', "v", "unsupported-version"),
        (f'sid="s",ts={NOW_MS + 3_600_000}', "ts", "timestamp-in-future"),
        ('sid="s",com.liveward-cdn="a b"', "com.liveward-cdn", "bad-characters"),
    ],
)
def test_a_bad_cmcd_value_names_its_key(text: str, field: str, reason: str) -> None:
    with pytest.raises(Invalid) as refused:
        sample_of(text)

    assert (refused.value.field, refused.value.reason) == (field, reason)


_KEYS = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,8}", fullmatch=True)
_VALUES: st.SearchStrategy[CmcdValue] = st.one_of(
    st.booleans(),
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
    st.from_regex(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]{0,8}", fullmatch=True).map(Token),
)


def _serialise(values: dict[str, CmcdValue]) -> str:
    parts = []
    for key, value in values.items():
        if value is True:
            parts.append(key)
        elif value is False:
            parts.append(f"{key}=?0")
        elif isinstance(value, (Token, int)):
            parts.append(f"{key}={value}")
        else:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{key}="{escaped}"')
    return ",".join(parts)


@given(st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_any_dictionary_a_player_can_write_reads_back_the_same(
    values: dict[str, CmcdValue],
) -> None:
    read = parse_payload(_serialise(values))

    assert read == values
    assert {k: type(v) for k, v in read.items()} == {k: type(v) for k, v in values.items()}


@given(st.text(max_size=60))
def test_no_text_makes_the_parser_fail_other_than_with_a_syntax_error(text: str) -> None:
    with contextlib.suppress(CmcdSyntaxError):
        parse_payload(text)
