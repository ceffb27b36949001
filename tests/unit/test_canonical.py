import pytest
from hypothesis import given, settings, strategies as st

from kiosk.domain.canonical import CanonicalError, decode, encode, reference_encode

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).map(
    lambda s: __import__("unicodedata").normalize("NFC", s)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@pytest.mark.req("P11-10e")
@given(json_values)
@settings(max_examples=300)
def test_encoding_matches_rfc8785_and_round_trips(value):
    raw = encode(value)
    assert raw == reference_encode(value)
    assert decode(raw) == value


@pytest.mark.req("P11-10e")
@pytest.mark.parametrize(
    "raw, why",
    [
        (b'{"a":1.5}', "float"),
        (b'{"a":1e3}', "float"),
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"b":1,"a":2}', "canonical"),
        (b'{"a": 1}', "canonical"),
        (b'{"a":"\\u00e9"}', "canonical"),
        (b'{"a":"e\xcc\x81"}', "NFC"),
        (b'{"a":NaN}', "NaN"),
        (b"\xff\xfe", "UTF-8"),
        (b"[" * 100 + b"]" * 100, "nested"),
        (b'{"a":9007199254740993}', "I-JSON"),
    ],
)
def test_decode_refuses_outside_the_profile(raw, why):
    with pytest.raises(CanonicalError, match=why):
        decode(raw)


def test_encode_refuses_floats_and_non_nfc_and_lone_surrogates():
    with pytest.raises(CanonicalError, match="float"):
        encode({"weight": 1.5})
    with pytest.raises(CanonicalError, match="NFC"):
        encode({"name": "e\u0301"})
    with pytest.raises(CanonicalError, match="surrogate"):
        encode({"name": "\ud800"})
    with pytest.raises(CanonicalError, match="key"):
        encode({1: "x"})


def test_astral_keys_sort_by_utf16_like_jcs():
    value = {"\U0001f600": 1, "\ufb01": 2}
    assert encode(value) == reference_encode(value)
    assert encode(value).index("\U0001f600".encode()) < encode(value).index("\ufb01".encode())


def test_oversized_input_is_refused():
    with pytest.raises(CanonicalError, match="limit"):
        decode(b'"' + b"a" * 300_000 + b'"')


def _full_path(raw: bytes):
    """What decode() answers without its fast path (the reference for the property below)."""
    from kiosk.domain.canonical import _decode_full

    try:
        return ("ok", _decode_full(raw.decode("utf-8"), raw))
    except CanonicalError:
        return ("refused", None)


def _decoded(raw: bytes):
    try:
        return ("ok", decode(raw))
    except CanonicalError:
        return ("refused", None)


ascii_text = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=8)
ascii_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | ascii_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(ascii_text, children, max_size=3),
    max_leaves=12,
)
any_text = st.text(max_size=6)  # not normalised, may hold lone surrogates and astral characters
any_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | any_text,
    lambda children: st.lists(children, max_size=3) | st.tuples(children)
    | st.dictionaries(any_text | st.integers(0, 3), children, max_size=3),
    max_leaves=12,
)


@pytest.mark.req("P11-10e")
@given(ascii_values, st.integers(0, 10_000), st.sampled_from(list(b'{}[]":,\\u0123456789.eE-+ abtfnrl')))
@settings(max_examples=500)
def test_the_fast_decode_path_accepts_exactly_what_the_full_path_accepts(value, where, byte):
    """Ingest relies on the ASCII fast path; a mutated byte must never slip through it."""
    import json

    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    mutated = raw[:where % (len(raw) + 1)] + bytes([byte]) + raw[where % (len(raw) + 1) + 1:]
    for candidate in (raw, mutated):
        assert _decoded(candidate) == _full_path(candidate)


@pytest.mark.parametrize("raw", [b'{"a":1,"a":1}', b'{"a":"\\ud800"}', b'{"a":"\\u00e9"}', b'{"a":"\\/"}',
                                 b'{"a":9007199254740992}', b'{"a":-0}', b'{"a":1.0}', b"[" * 40 + b"]" * 40,
                                 b'{"a":"\\u0000"}', b'{"a":"\\u001f\\n"}'])
def test_the_fast_path_and_the_full_path_agree_on_edge_cases(raw):
    assert _decoded(raw) == _full_path(raw)


def _outcome(check, value):
    try:
        return ("ok", check(value))
    except CanonicalError as exc:
        return ("refused", str(exc))


@pytest.mark.req("P11-10e")
@given(any_values)
@settings(max_examples=500)
def test_fast_profile_check_decides_exactly_like_the_full_check(value):
    """The signing path uses a fast check; it must accept, refuse and explain exactly as the full one."""
    from kiosk.domain import canonical

    assert _outcome(canonical._profile_check, value) == _outcome(lambda v: canonical._check(v, "$", 0), value)


@pytest.mark.parametrize("depth", [30, 31, 32, 33, 34])
def test_fast_profile_check_keeps_the_depth_limit(depth):
    from kiosk.domain import canonical

    for leaf in ("x", 1, None, {"k": "v"}, ["x"], "\u00e9"):
        value = leaf
        for _ in range(depth):
            value = [value]
        assert _outcome(canonical._profile_check, value) == _outcome(lambda v: canonical._check(v, "$", 0), value)
        value = leaf
        for _ in range(depth):
            value = {"k": value}
        assert _outcome(canonical._profile_check, value) == _outcome(lambda v: canonical._check(v, "$", 0), value)


@pytest.mark.parametrize("depth", [29, 30, 31, 32, 33, 34, 40])
def test_decode_fast_path_keeps_the_depth_limit(depth):
    """The fast path bounds nesting itself; deep bytes get exactly the full path's answer."""
    from kiosk.domain import canonical

    for leaf in (b"1", b'"x"', b"{}", b"[]", b"null"):
        for open_, close in ((b"[", b"]"), (b'{"k":', b"}")):
            raw = open_ * depth + leaf + close * depth
            assert _outcome(canonical.decode, raw) == _outcome(
                lambda r: canonical._decode_full(r.decode(), r), raw)
