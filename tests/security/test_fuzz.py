"""Bad input, generated (hypothesis): names, reasons, field values, recipe and config files, record lines
and inbox rows. Every input is either accepted or refused with the specific exception of that input
(InvalidInput, SigningError, RecipeError, ConfigError, RecordError) whose message says what is wrong;
nothing else escapes, and the stores still verify afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tomllib

import pyotp
import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from kiosk.app import build_kiosk, shipped_recipes
from kiosk.config import ConfigError, KioskConfig, load_config
from kiosk.demo import DEMO_PASSWORD, create_demo
from kiosk.domain.clock import UTC, FakeClock
from kiosk.domain.passwords import PasswordHasher
from kiosk.domain.recipes import RecipeError
from kiosk.domain.records import RecordError, parse_line, parse_raw
from kiosk.services.auth import Actor, InvalidInput
from kiosk.services.signing import SigningError
from storage.central import CentralStore
from storage.verify_local import verify_local_store

CHEAP = dict(time_cost=1, memory_kib=1024, parallelism=1)
FUZZ = settings(max_examples=int(os.environ.get("KIOSK_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Any text, including what a terminal or a clipboard can produce: controls, markup, bidi overrides,
# decomposed accents, astral characters and lone surrogates.
NASTY = ["\x1b", "\x00", "\x7f", "\u202e", "\ud800", "\udfff", "\u0301", "[", "]", "<", ">", "\u2028", "\ufeff",
         "\U0001f600", "\uffff", "\U0010ffff", "\t", "\n"]
nasty_text = st.one_of(
    st.text(st.characters(codec=None), max_size=40),                                  # anything printable or not
    st.builds(lambda a, bad, b: a + bad + b, st.text(max_size=6), st.sampled_from(NASTY), st.text(max_size=6)),
    st.text(st.sampled_from(NASTY), max_size=4),
    st.sampled_from(["", " ", "x" * 5000, "[bold]x[/]", "\x1b]52;c;ZXZpbA==\x07", "Jose\u0301 Garci\u0301a",
                     "ana.op\u202e", "e\u0301"]),
)


# -- one terminal for the whole module: fuzzing is about many inputs, not many set-ups ------------

@pytest.fixture(scope="module")
def terminal(tmp_path_factory):
    clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC), zone="Europe/Dublin")
    kiosk, users = create_demo(tmp_path_factory.mktemp("fuzz") / "data", clock, hasher=PasswordHasher(**CHEAP))
    ana = next(u for u in users if u.user_id == "ana.op")
    kiosk.auth.accept_first_use(kiosk.auth.user("ana.op"))
    recipe = tmp_path_factory.mktemp("recipes") / "all-types.toml"
    recipe.write_text(ALL_TYPES, "utf-8")
    kiosk.signing.register_recipe_file(recipe, {"user_id": "admin", "name": "Ada Admin", "role": "admin"}, "fuzzing")
    clock.advance(31)
    assert kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(ana.totp_secret).at(clock.now())).ok
    yield kiosk, clock, ana
    kiosk.close()
    report = verify_local_store(kiosk.data_dir)
    assert report.ok, report.error


ALL_TYPES = """
id = "all-types"
version = 1
title = "One step with a field of every type"
[[steps]]
id = "record"
title = "Record everything"
fields = [
  { name = "weight", type = "decimal", label = "Weight", unit = "kg", min = "1.480", max = "1.520" },
  { name = "count", type = "integer", label = "Count", min = "1", max = "100" },
  { name = "lot", type = "text", label = "Lot" },
  { name = "grade", type = "choice", label = "Grade", choices = ["A", "B"] },
  { name = "clean", type = "bool", label = "Clean" },
  { name = "note", type = "text", label = "Note", required = false },
]
signatures = [{ meaning = "Performed", roles = ["operator"] }]
"""
ADMIN = Actor("admin", "Ada Admin", "admin")
_counter = iter(range(10**9))


@pytest.mark.req("A11-9")
@pytest.mark.req("P11-10e")
@given(user_id=nasty_text, name=nasty_text, reason=nasty_text, method=nasty_text, badge=st.none() | nasty_text,
       qualifications=st.lists(nasty_text, max_size=3))
@example(user_id="x.1", name="Jose\u0301", reason="new starter", method="photo ID", badge=None, qualifications=[])
@example(user_id="x.2", name="Ana", reason="new starter", method="photo ID", badge="\x1b[2J", qualifications=[])
@example(user_id="x.3", name="Ana", reason="new starter", method="photo ID", badge=None, qualifications=["\ud800"])
@example(user_id="x.4", name="A\u202eB", reason="r\ud800son", method="\x00", badge=None, qualifications=[])
@FUZZ
def test_user_fields(terminal, user_id, name, reason, method, badge, qualifications):
    kiosk, _, _ = terminal
    head = kiosk.store.head().seq
    try:
        kiosk.auth.create_user(ADMIN, user_id, name, ["operator"], reason=reason, identity_verified=True,
                               verification_method=method, badge_id=badge, qualifications=qualifications)
    except InvalidInput as exc:
        assert str(exc) and kiosk.store.head().seq == head  # refused: nothing written
        return
    assert kiosk.store.head().seq == head + 1


@pytest.mark.req("A11-9")
@given(uid=nasty_text, reason=nasty_text)
@FUZZ
def test_unlock_and_update_reasons(terminal, uid, reason):
    kiosk, _, _ = terminal
    head = kiosk.store.head().seq
    for call in (lambda: kiosk.auth.update_user(ADMIN, "ben.op", reason=reason, printed_name=uid),
                 lambda: kiosk.auth.unlock("sam.sup", "wrong password!", None, uid, reason)):
        try:
            call()
        except InvalidInput as exc:
            assert str(exc)
        except Exception as exc:  # noqa: BLE001 - only the service's own refusals may come out
            from kiosk.services.auth import AuthError

            assert isinstance(exc, AuthError), repr(exc)
    assert kiosk.store.head().seq >= head


field_value = nasty_text | st.sampled_from(["1.5", "1.50", "7", "1e999999", "-0", "NaN", "Infinity", "1_000", "0x10",
                                            "١٢٣", "1.50000000000000000000001", "A", "B", "yes", "no", "  1.49  "])
FIELDS = ["weight", "count", "lot", "grade", "clean", "note"]


@pytest.mark.req("P11-70")
@pytest.mark.req("A11-9")
@given(values=st.fixed_dictionaries({}, optional={name: field_value for name in FIELDS})
       | st.dictionaries(st.sampled_from(FIELDS) | nasty_text, field_value, max_size=7),
       comment=nasty_text, deviation=nasty_text)
@example(values={"weight": "1.5", "count": "7", "lot": "\ud800", "grade": "A", "clean": "yes"}, comment="", deviation="")
@example(values={"weight": "1.5", "count": "7", "lot": "Lot e\u0301", "grade": "A", "clean": "yes"}, comment="",
         deviation="")
@example(values={"weight": "9", "count": "7", "lot": "L", "grade": "A", "clean": "yes"}, comment="spill\u202e",
         deviation="DEV-\ud800")
@FUZZ
def test_step_values_comments_and_deviation_references(terminal, values, comment, deviation):
    kiosk, clock, ana = terminal
    batch = f"F-{next(_counter):06d}"
    kiosk.session.activity()
    kiosk.signing.create_batch(batch, "all-types@1")
    head = kiosk.store.head().seq
    try:
        prepared = kiosk.signing.prepare(batch, "record", "Performed", values, comment=comment,
                                         deviation_ref=deviation)
    except SigningError as exc:
        assert str(exc) and kiosk.store.head().seq == head
        return
    totp = None
    if "totp" in prepared.components:
        clock.advance(31)
        totp = pyotp.TOTP(ana.totp_secret).at(clock.now())
    record = kiosk.signing.sign(prepared, DEMO_PASSWORD, "ana.op", totp)  # accepted values: signed, stored
    assert record["values"] == dict(prepared.values) and kiosk.store.head().seq == head + 1


@pytest.mark.req("P11-70")
@given(values=st.dictionaries(st.sampled_from(FIELDS), field_value, max_size=2).map(
    lambda bad: {"weight": "1.5", "count": "7", "lot": "L-1", "grade": "A", "clean": "yes", **bad}))
@FUZZ
def test_one_bad_value_among_good_ones(terminal, values):
    kiosk, clock, ana = terminal
    batch = f"G-{next(_counter):06d}"
    kiosk.session.activity()
    kiosk.signing.create_batch(batch, "all-types@1")
    try:
        prepared = kiosk.signing.prepare(batch, "record", "Performed", values)
    except SigningError as exc:
        assert str(exc)
        return
    kiosk.signing.sign(prepared, DEMO_PASSWORD, "ana.op", pyotp.TOTP(ana.totp_secret).at(clock.advance(31) or clock.now())
                       if "totp" in prepared.components else None)


# -- files: recipes and config ----------------------------------------------------------------

def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_document(data: dict) -> str:
    return "\n".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in data.items()) + "\n"


toml_scalars = (st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
                | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
                | st.datetimes(timezones=st.just(UTC)) | st.dates())
toml_values = st.recursive(toml_scalars, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8)


def _mutate(data, path_choices, value, drop):
    """Replace (or drop) the value at one place in a nested dict/list."""
    node, parent, key = data, None, None
    for choice in path_choices:
        if isinstance(node, dict) and node:
            parent, key = node, sorted(node)[choice % len(node)]
            node = node[key]
        elif isinstance(node, list) and node:
            parent, key = node, choice % len(node)
            node = node[key]
        else:
            break
    if parent is None:
        return data
    if drop and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = value
    return data


RECIPES = [tomllib.loads(p.read_text("utf-8")) for p in shipped_recipes()]


@pytest.mark.req("P11-10k")
@given(which=st.integers(0, len(RECIPES) - 1),
       edits=st.lists(st.tuples(st.lists(st.integers(0, 50), min_size=1, max_size=6), toml_values, st.booleans()),
                      min_size=1, max_size=3))
@FUZZ
def test_recipe_files_with_wrong_structure(terminal, tmp_path_factory, which, edits):
    data = json.loads(json.dumps(RECIPES[which]))
    for path, value, drop in edits:
        data = _mutate(data, path, value, drop)
    text = toml_document(data)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assume(False)  # our writer made something TOML cannot hold; not the recipe parser's input
    _recipe_outcome(terminal, tmp_path_factory, text.encode("utf-8"))


@pytest.mark.req("P11-10k")
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(raw=b"\x80")
@example(raw=b'id = "x"\nversion = 1\ntitle = 1979-05-27\nsteps = [{ id = "a", title = "A", '
             b'signatures = [{ meaning = "Performed", roles = ["operator"] }] }]\n')
@example(raw='id = "x"\nversion = 1\ntitle = "Cafe\u0301"\nsteps = [{ id = "a", title = "A", after = 3, '
             'signatures = [{ meaning = "Performed", roles = "operator" }] }]\n'.encode())
@FUZZ
def test_recipe_files_that_are_not_toml_or_not_utf8(terminal, tmp_path_factory, raw):
    _recipe_outcome(terminal, tmp_path_factory, raw)


def _recipe_outcome(terminal, tmp_path_factory, raw: bytes) -> None:
    kiosk, _, _ = terminal
    path = tmp_path_factory.mktemp("recipe") / "recipe.toml"
    path.write_bytes(raw)
    head = kiosk.store.head().seq
    try:
        recipe = kiosk.signing.register_recipe_file(path, ADMIN.body(), "fuzzed recipe")
    except RecipeError as exc:
        assert str(path) in str(exc), str(exc)  # the message names the file
        assert kiosk.store.head().seq == head
        return
    assert recipe.steps  # accepted: a usable recipe


CONFIG_KEYS = {f"{section}.{key}": value for section, table in tomllib.loads(
    (shipped_recipes()[0].parents[1] / "kiosk.toml").read_text("utf-8")).items() for key, value in table.items()}


@pytest.mark.req("A11-10")
@given(entries=st.dictionaries(st.sampled_from(sorted(CONFIG_KEYS)) | st.text(max_size=10), toml_values, max_size=4))
@FUZZ
def test_config_files_with_wrong_values(tmp_path_factory, entries):
    sections: dict = {}
    for dotted, value in entries.items():
        section, _, key = dotted.partition(".")
        if not isinstance(sections.setdefault(section or "x", {}), dict):
            continue
        sections[section or "x"][key or "k"] = value
    path = tmp_path_factory.mktemp("config") / "kiosk.toml"
    path.write_text(toml_document(sections), "utf-8")
    _config_outcome(path)


@pytest.mark.req("A11-10")
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(raw=b"\xff\xfe[site]")
@example(raw=b'[site]\ntimezone = "../../../etc/passwd"\n')
@example(raw=b'[site]\ntimezone = "Europe/Dublin\\u0000"\n')
@example(raw=b"[session]\nidle_timeout_s = 1e3\n")
@example(raw=b"[auth]\nlockout_threshold = 99999999999999999999999\n")
@example(raw=b'[site]\nname = { a = 1 }\n')
@FUZZ
def test_config_files_that_are_not_toml_or_not_utf8(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("config") / "kiosk.toml"
    path.write_bytes(raw)
    _config_outcome(path)


def _config_outcome(path) -> None:
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc), str(exc)
        return
    assert isinstance(config, KioskConfig)


# -- record lines and inbox rows --------------------------------------------------------------

def _valid_line(terminal) -> str:
    kiosk = terminal[0]
    row = list(kiosk.store.iter_rows(upto=3))[-1]
    record, _ = parse_raw(row.raw)
    from kiosk.domain.records import SignedRecord

    return SignedRecord(record, row.raw, row.hash, row.sig).to_line()


def _nested(depth: int) -> str:
    return '{"r":' + '{"a":' * depth + "1" + "}" * depth + ',"s":"AA"}'


malformed_lines = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.sampled_from([
        _nested(40), _nested(100_000), "[" * 200_000,
        '{"r":{"v":1.0},"s":"AA"}', '{"r":{"a":1,"a":2},"s":"AA"}', '{"r":{"a":"\\ud800"},"s":"AA"}',
        '{"r":{"a":NaN},"s":"AA"}', '{"r":{"a":1e400},"s":"AA"}', '{"r":{"a":123456789012345678901234},"s":"AA"}',
        '{"r":{},"s":"not base64!"}', '{"r":{},"s":1}', '{"r":[],"s":""}', "null", "", "{}", '"\\u0000"',
        '{"r":{"a":"' + "x" * 3_000_000 + '"},"s":"AA"}',
    ]),
)


@pytest.mark.req("P11-10b")
@pytest.mark.req("P11-10e")
@given(line=malformed_lines, mutate=st.none() | st.tuples(st.integers(0, 10_000), st.integers(1, 255)))
@FUZZ
def test_malformed_record_lines_are_refused_clearly(terminal, line, mutate):
    if mutate is not None:
        good = bytearray(_valid_line(terminal).encode())
        pos, delta = mutate
        good[pos % len(good)] = (good[pos % len(good)] + delta) % 256
        line = bytes(good)
    try:
        raw, sig = parse_line(line)
        parse_raw(raw)
    except RecordError as exc:
        assert exc.where and exc.detail
        return
    # A line that survives parsing must be a canonical record (a byte flip inside the signature).
    assert len(sig) == 64 or mutate is not None


@pytest.mark.req("P11-10b")
def test_a_huge_line_is_refused_before_parsing():
    with pytest.raises(RecordError, match="over the 262144-byte record limit"):
        parse_line('{"r":{"a":"' + "x" * 50_000_000 + '"},"s":"AA"}')


@pytest.mark.req("P11-10e")
@pytest.mark.req("P11-300e")
@given(rows=st.lists(st.tuples(st.sampled_from(["line-1:1", "fuzz-1:1", "x" * 80]), st.integers(-5, 2**62),
                               st.binary(min_size=32, max_size=32), malformed_lines.map(
                                   lambda x: x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass")),
                               st.binary(min_size=64, max_size=64)), min_size=1, max_size=4))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
def test_garbage_in_the_inbox_never_stops_ingest(central_with_a_chain, rows):
    central, good_rows = central_with_a_chain
    before = central.ledger_count("good-1:1")
    central.push([(c, s, h, r[:300_000], g) for c, s, h, r, g in rows])
    central.ingest_all()
    assert central.ledger_count("good-1:1") == before
    # A real terminal's records still go through after the garbage.
    central.push(good_rows.pop(0))
    central.ingest_all()
    assert central.ledger_count("good-1:1") == before + 1


@pytest.fixture(scope="module")
def central_with_a_chain(tmp_path_factory):
    clock = FakeClock(dt.datetime(2026, 11, 24, 10, 0, tzinfo=UTC), zone="Europe/Dublin")
    base = tmp_path_factory.mktemp("central")
    kiosk = build_kiosk(KioskConfig(), base / "k", clock, device_id="good-1", hasher=PasswordHasher(**CHEAP))
    kiosk.store.append_many([("note.added", {"n": n}) for n in range(200)])
    rows = [[(r.chain, r.seq, r.hash, r.raw, r.sig)] for r in kiosk.store.iter_rows()]
    kiosk.close()
    from tests.storage.conftest import ADMIN, central_key

    central = CentralStore.open(f"sqlite:///{base / 'central.db'}", clock, central_key(base), central_time=clock)
    central.push(rows.pop(0))
    central.ingest_all()
    central.decide_device("good-1:1", "approved", ADMIN, "fingerprint compared")
    central.ingest_all()
    yield central, rows
    central.close()
