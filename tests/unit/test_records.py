import json
import re

import pytest

from kiosk.domain.chain import CHAIN_OPENED, ChainVerifier
from kiosk.domain.keys import SigningKey, b64url, fingerprint_of, kid_of
from kiosk.domain.records import (
    GENESIS_PREV,
    BadSignature,
    BrokenLink,
    MalformedRecord,
    NotCanonical,
    UnknownKey,
    new_uuid7,
    open_signed,
    parse_line,
    seal,
)


def make(key, clock, seq=1, prev=GENESIS_PREV, type="step.signed", body=None, chain="dev-1:1"):
    return seal(key, chain=chain, seq=seq, prev=prev, type=type, moment=clock.now(),
                zone=clock.zone, body=body if body is not None else {"x": "1.0"})


@pytest.mark.req("DI-ALCOA")
def test_sealed_record_has_every_field_and_verifies(clock):
    key = SigningKey.generate()
    signed = make(key, clock)
    obj = json.loads(signed.raw)
    assert list(obj) == sorted(["v", "chain", "seq", "prev", "id", "type", "ts", "tz", "kid", "body"])
    assert obj["ts"] == "2026-11-24T10:00:00.000000Z" and obj["tz"] == "Europe/Dublin"
    assert obj["kid"] == kid_of(key.public.raw) and len(obj["kid"]) == 16
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", obj["id"])
    assert open_signed(signed.raw, signed.sig, key.public).record == signed.record


def test_uuid7_orders_by_time(clock):
    first = new_uuid7(clock.now())
    clock.advance(0.002)
    assert new_uuid7(clock.now()) > first


def test_fingerprint_is_full_sha256_in_groups_of_four():
    key = SigningKey.generate()
    groups = fingerprint_of(key.public.raw).split(" ")
    assert len(groups) == 16 and all(len(g) == 4 for g in groups)
    assert "".join(groups).startswith(key.kid)


@pytest.mark.req("P11-70")
def test_changed_byte_bad_signature_and_wrong_key_are_named(clock):
    key, other = SigningKey.generate(), SigningKey.generate()
    signed = make(key, clock, seq=7, body={"x": "1.0"})
    forged = signed.raw.replace(b'"1.0"', b'"2.0"')
    with pytest.raises(BadSignature, match="dev-1:1 #7"):
        open_signed(forged, signed.sig, key.public)
    with pytest.raises(UnknownKey, match="#7"):
        open_signed(signed.raw, signed.sig, other.public)
    with pytest.raises(NotCanonical, match="canonical"):
        open_signed(signed.raw.replace(b",", b", ", 1), signed.sig, key.public)


def test_record_fields_are_validated(clock):
    key = SigningKey.generate()
    with pytest.raises(MalformedRecord, match="type"):
        make(key, clock, type="Not A Type")
    with pytest.raises(MalformedRecord, match="float"):
        make(key, clock, body={"w": 1.5})


@pytest.mark.parametrize("field", ["chain", "prev", "id", "type", "kid"])
def test_a_header_field_with_a_trailing_newline_is_refused(clock, field):
    """``$`` in a pattern also matches before a final newline; the header patterns must not."""
    from kiosk.domain.records import Record

    obj = json.loads(make(SigningKey.generate(), clock).raw)
    obj[field] += "\n"
    with pytest.raises(MalformedRecord, match=field):
        Record.from_obj(obj, "record")


def test_a_parsed_record_equals_the_one_built_field_by_field(clock):
    """from_obj fills the frozen instance directly; it must be the same value __init__ builds."""
    from kiosk.domain.records import Record

    signed = make(SigningKey.generate(), clock, body={"n": 1})
    obj = json.loads(signed.raw)
    parsed = Record.from_obj(obj, "record")
    assert parsed == Record(**obj)
    assert repr(parsed) == repr(Record(**obj)) and parsed.to_obj() == obj
    with pytest.raises(AttributeError):
        parsed.seq = 2  # still frozen
    from kiosk.domain.records import SignedRecord

    key = SigningKey.generate()
    signed = make(key, clock, body={"n": 1})
    opened = open_signed(signed.raw, signed.sig, key.public)  # check_signature fills it directly too
    assert opened == SignedRecord(opened.record, signed.raw, signed.hash, signed.sig) == signed
    assert repr(opened) == repr(signed)
    with pytest.raises(AttributeError):
        opened.sig = b""


@pytest.mark.parametrize("version", [True, 2, "1"])
def test_a_record_version_other_than_the_integer_1_is_refused(clock, version):
    from kiosk.domain.records import Record

    obj = json.loads(make(SigningKey.generate(), clock).raw)
    obj["v"] = version
    with pytest.raises(MalformedRecord, match="version"):
        Record.from_obj(obj, "record")


def test_record_line_round_trips(clock):
    key = SigningKey.generate()
    signed = make(key, clock)
    raw, sig = parse_line(signed.to_line())
    assert raw == signed.raw and sig == signed.sig
    with pytest.raises(MalformedRecord):
        parse_line('{"r": {}, "s": "x", "extra": 1}')


def _chain(key, clock, n):
    out, prev = [], GENESIS_PREV
    body0 = {"public_key": b64url(key.public.raw)}
    for seq in range(1, n + 1):
        signed = make(key, clock, seq=seq, prev=prev, type=CHAIN_OPENED if seq == 1 else "step.signed", body=body0 if seq == 1 else {"n": seq})
        out.append(signed)
        prev = signed.hash_hex
        clock.advance(1)
    return out


@pytest.mark.req("P11-10e")
def test_verifier_detects_gap_reorder_and_foreign_chain(clock):
    key = SigningKey.generate()
    chain = _chain(key, clock, 5)
    v = ChainVerifier("dev-1:1")
    v.feed(chain[0].raw, chain[0].sig)
    with pytest.raises(BrokenLink, match="missing or deleted"):
        v.feed(chain[2].raw, chain[2].sig)
    v = ChainVerifier("dev-1:1")
    for s in chain[:3]:
        v.feed(s.raw, s.sig)
    with pytest.raises(BrokenLink, match="repeated or reordered"):
        v.feed(chain[1].raw, chain[1].sig)
    with pytest.raises(BrokenLink, match="not dev-2:1"):
        ChainVerifier("dev-2:1").feed(chain[0].raw, chain[0].sig)


@pytest.mark.req("P11-70")
def test_signatures_verified_first_give_the_verdicts_feed_would(clock):
    key = SigningKey.generate()
    chain = _chain(key, clock, 6)
    forged = chain[3].sig[:-1] + bytes([chain[3].sig[-1] ^ 1])
    rows = [(s.raw, s.sig) for s in chain[1:]]
    rows[2] = (chain[3].raw, forged)
    v = ChainVerifier("dev-1:1", key.public)
    v.feed(chain[0].raw, chain[0].sig)
    v.verify_signatures_first(rows)
    v.feed(chain[1].raw, chain[1].sig)
    v.feed(chain[2].raw, chain[2].sig)
    with pytest.raises(BadSignature, match="dev-1:1 #4"):
        v.feed(chain[3].raw, forged)
    assert v.next_seq == 4  # refused before it moved on
    # A signature that was not verified ahead (the genuine one, in place of the forged row) is verified
    # when it is fed; a verdict is only ever for the very bytes and signature it was worked out for.
    v.feed(chain[3].raw, chain[3].sig)
    v.verify_signatures_first([(chain[4].raw, forged), (chain[5].raw, chain[5].sig)])
    v.feed(chain[4].raw, chain[4].sig)
    v.feed(chain[5].raw, chain[5].sig)
    # A chain whose key comes from its first record has nothing to verify ahead with: feed verifies.
    w = ChainVerifier("dev-1:1")
    w.verify_signatures_first([(s.raw, s.sig) for s in chain])
    w.feed(chain[0].raw, chain[0].sig)
    with pytest.raises(BadSignature):
        w.feed(chain[1].raw, chain[2].sig)


def test_verifier_refuses_a_chain_whose_key_is_not_the_pinned_one(clock):
    key, other = SigningKey.generate(), SigningKey.generate()
    chain = _chain(key, clock, 2)
    with pytest.raises(UnknownKey, match="not the key enrolled"):
        ChainVerifier("dev-1:1", other.public).feed(chain[0].raw, chain[0].sig)


def test_signing_key_repr_never_shows_key_material():
    key = SigningKey.generate()
    assert "PRIVATE" not in repr(key) and key.kid in repr(key)


def test_uuid7_text_is_the_standard_uuid_form():
    import datetime as dt
    import uuid

    moment = dt.datetime(2026, 11, 24, 10, 52, 6, 123456, tzinfo=dt.timezone.utc)
    for fill in (b"\x00" * 10, b"\xff" * 10, bytes(range(10))):
        text = new_uuid7(moment, lambda n, fill=fill: fill[:n])
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == int(moment.timestamp() * 1000)


def test_recipe_and_step_ids_with_a_trailing_newline_are_refused():
    import tomllib
    from pathlib import Path

    from kiosk.domain.recipes import RecipeError, parse_recipe_dict

    shipped = Path(__file__).resolve().parents[2] / "config" / "recipes" / "buffer-preparation.toml"
    data = tomllib.loads(shipped.read_text("utf-8"))
    parse_recipe_dict(data, "shipped")  # the shipped recipe itself passes
    with pytest.raises(RecipeError, match="recipe id"):
        parse_recipe_dict({**data, "id": data["id"] + "\n"}, "edited")
    steps = [dict(data["steps"][0], id=data["steps"][0]["id"] + "\n"), *data["steps"][1:]]
    with pytest.raises(RecipeError, match="step 1"):
        parse_recipe_dict({**data, "steps": steps}, "edited")
