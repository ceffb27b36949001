import dataclasses
import json

import pytest

from kiosk import __version__
from kiosk.app import shipped_recipes
from kiosk.domain.clock import format_ts
from kiosk.domain.recipes import RecipeError
from kiosk.domain.records import parse_raw
from kiosk.domain.session import LockReason
from kiosk.services.auth import Actor, AuthError
from kiosk.services.signing import SigningError
from storage.drafts_local import LocalDrafts
from storage.verify_local import verify_local_store
from tests.services.conftest import totp_now
from tests.storage.conftest import central  # noqa: F401 - the fixture (PostgreSQL and SQLite)

PW = "correct horse battery staple"


@pytest.fixture
def floor(kiosk, admin, clock):
    """Admin, two operators, a QA reviewer with real passwords; recipes registered; a batch started."""
    actor, admin_issued = admin
    people = {}
    for uid, name, roles in [("jane.op", "Jane Operator", ("operator",)), ("omar.op", "Omar Operator", ("operator",)),
                             ("quinn.qa", "Quinn QA", ("qa",))]:
        issued = kiosk.auth.create_user(actor, uid, name, roles, reason="new starter", identity_verified=True)
        clock.advance(31)
        kiosk.auth.change_password(uid, issued.temporary_password, PW, totp_now(issued.totp_secret, clock))
        kiosk.auth.accept_first_use(kiosk.auth.user(uid))
        people[uid] = issued
    for path in shipped_recipes():
        kiosk.signing.register_recipe_file(path, actor.body(), "initial recipes")
    clock.advance(31)
    assert kiosk.session.login("jane.op", PW, totp_now(people["jane.op"].totp_secret, clock)).ok
    kiosk.signing.create_batch("B-1", "buffer-prep@4")
    return people


def register_recipe(kiosk, actor, folder, text):
    """A recipe written to a file and registered by the admin, as a site does."""
    path = folder / "recipe.toml"
    path.write_text(text)
    return kiosk.signing.register_recipe_file(path, actor.body(), "new product")


def code(floor, uid, clock):
    clock.advance(31)
    return totp_now(floor[uid].totp_secret, clock)


def clear_line(kiosk, floor, clock):
    """Line clearance performed by the session owner and verified by a second operator."""
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"}),
                       PW, "jane.op", code(floor, "jane.op", clock))
    kiosk.signing.witness(kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "yes"},
                                                witness=True), "omar.op", PW, code(floor, "omar.op", clock))


@pytest.mark.req("P11-200a1")
@pytest.mark.req("P11-50")
@pytest.mark.req("P11-70")
def test_first_signature_needs_all_components_later_ones_the_password(kiosk, floor, clock):
    p = kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})
    assert p.components == ("user_id", "password", "totp")
    assert p.preview.printed_name == "Jane Operator" and p.preview.meaning == "Performed"
    assert p.preview.tz == "Europe/Dublin" and p.preview.signed_at.endswith("Z")
    with pytest.raises(SigningError, match="Invalid"):
        kiosk.signing.sign(p, PW, "jane.op", None)
    record = kiosk.signing.sign(p, PW, "jane.op", code(floor, "jane.op", clock))
    assert record["manifestation"]["printed_name"] == "Jane Operator"
    assert record["content_hash"] == p.content_hash
    kiosk.signing.witness(kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "yes"},
                                                witness=True), "omar.op", PW, code(floor, "omar.op", clock))
    p2 = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    assert p2.components == ("password",)
    kiosk.signing.sign(p2, PW)
    steps = {s.step_id: s.status for s in kiosk.signing.steps("B-1")}
    assert steps["line-clearance"] == "done" and steps["weigh-salts"] == "in_progress"
    assert steps["dissolve"] == "locked"


@pytest.mark.req("P11-200a1")
@pytest.mark.req("P11-200a2")
def test_continuity_ends_at_lock_timeout_and_restart(kiosk, floor, clock):
    clear_line(kiosk, floor, clock)
    kiosk.session.lock(LockReason.MANUAL)
    with pytest.raises(Exception, match="log in"):
        kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    p = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    assert p.components == ("user_id", "password", "totp")
    clock.advance(301)
    assert kiosk.session.tick() == LockReason.IDLE
    with pytest.raises(Exception, match="log in"):
        kiosk.signing.sign(p, PW, "jane.op", code(floor, "jane.op", clock))
    types = [r.type for r in kiosk.store.iter_rows()]
    assert "session.locked" in types and "session.timeout" in types


@pytest.mark.req("P11-10f")
def test_steps_are_signed_in_order(kiosk, floor):
    with pytest.raises(SigningError, match="sign 'Weigh sodium phosphate' first"):
        kiosk.signing.prepare("B-1", "dissolve", "Performed", {"water_l": "100", "mix_min": "20"})


@pytest.mark.req("P11-200a3")
@pytest.mark.req("P11-10g")
def test_witness_is_a_different_person_with_own_full_credentials(kiosk, floor, clock):
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"}),
                       PW, "jane.op", code(floor, "jane.op", clock))
    w = kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "yes"}, witness=True)
    with pytest.raises(SigningError, match="different person"):
        kiosk.signing.witness(w, "jane.op", PW, code(floor, "jane.op", clock))
    with pytest.raises(SigningError, match="Invalid"):
        kiosk.signing.witness(w, "omar.op", PW, None)
    rec = kiosk.signing.witness(w, "omar.op", PW, code(floor, "omar.op", clock))
    assert rec["manifestation"]["user_id"] == "omar.op" and rec["record_type"] == "witness.signed"
    assert kiosk.session.session.owner == "jane.op"  # the witness never took over the session
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["line-clearance"] == "done"


@pytest.mark.req("P11-10g")
def test_role_authority_and_signing_as_someone_else_is_refused_and_alerted(kiosk, floor, clock):
    clear_line(kiosk, floor, clock)
    p = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    with pytest.raises(SigningError, match="only sign as yourself"):
        kiosk.signing.sign(p, PW, "omar.op", code(floor, "omar.op", clock))
    assert any(a["kind"] == "sign.other_identity" for a in kiosk.auth.alerts())


@pytest.mark.req("P11-70")
@pytest.mark.req("A11-8")
def test_correction_invalidates_signatures_and_needs_resign(kiosk, floor, clock):
    clear_line(kiosk, floor, clock)
    p = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    kiosk.signing.sign(p, PW)
    with pytest.raises(SigningError, match="correction"):
        kiosk.signing.prepare("B-1", "weigh-salts", "Verified", {"balance_id": "BAL-7", "net_kg": "1.501"}, witness=True)
    with pytest.raises(SigningError, match="these are the values already recorded; change a value first"):
        kiosk.signing.correct("B-1", "weigh-salts", {"balance_id": "BAL-7", "net_kg": "1.500"}, "transcription error")
    kiosk.signing.correct("B-1", "weigh-salts", {"balance_id": "BAL-7", "net_kg": "1.501"}, "transcription error")
    status = {s.step_id: s for s in kiosk.signing.steps("B-1")}["weigh-salts"]
    assert status.status == "needs_resign" and not any(s["valid"] for s in status.signatures)
    types = [r.type for r in kiosk.store.iter_rows()][-2:]
    assert types == ["step.corrected", "signature.invalidated"]


@pytest.mark.req("P11-10f")
@pytest.mark.req("DI-ALCOA")
def test_an_answer_typed_in_another_case_is_signed_as_the_recipe_spells_it(kiosk, floor, clock):
    """"Yes" typed with shift held is the recipe's "yes": signed, shown and corrected as such, never refused
    with "answer yes or no"."""
    from kiosk.ui_adapter import UiWork

    shown = UiWork(kiosk).prepare_signature("B-1", "line-clearance", "Performed", {"area_clear": "Yes"}, "", "")
    assert "Values: area_clear = yes" in shown.lines
    p = kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": " YES "})
    assert p.values == (("area_clear", "yes"),)
    assert p.content_hash == kiosk.signing.prepare("B-1", "line-clearance", "Performed",
                                                   {"area_clear": "yes"}).content_hash
    signed = kiosk.signing.sign(p, PW, "jane.op", code(floor, "jane.op", clock))
    assert signed["new"] == {"area_clear": "yes"}
    kiosk.signing.witness(kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "yES"},
                                                witness=True), "omar.op", PW, code(floor, "omar.op", clock))
    with pytest.raises(SigningError, match="these are the values already recorded"):
        kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "Yes"}, "typed again")
    kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "No"}, "labels of the last batch found")
    assert kiosk.signing.batch("B-1")["steps"]["line-clearance"]["values"] == {"area_clear": "no"}
    with pytest.raises(SigningError, match="answer yes or no"):
        kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "y"}, "an answer is yes or no")


NO_VALUES = '''
id = "sop-read"
version = 1
title = "SOP read and understood"
product = "-"
start_roles = ["operator"]
[[steps]]
id = "read"
title = "Read SOP-114"
signatures = [{ meaning = "Performed", roles = ["operator"] }]
'''


@pytest.mark.req("P11-10g")
@pytest.mark.req("P11-70")
def test_only_the_roles_that_enter_a_steps_values_may_correct_them(kiosk, admin, floor, clock, tmp_path):
    """A correction takes back the signatures of those who did the work: QA corrects QA's entries, not an
    operator's (altering a record is an authority, 11.10(g))."""
    clear_line(kiosk, floor, clock)
    assert kiosk.signing.may_enter_values("B-1", "line-clearance")
    kiosk.session.logout()
    assert kiosk.session.login("quinn.qa", PW, code(floor, "quinn.qa", clock)).ok
    assert not kiosk.signing.may_enter_values("B-1", "line-clearance")
    assert kiosk.signing.may_enter_values("B-1", "qa-approval")
    before = len(list(kiosk.store.iter_rows()))
    with pytest.raises(SigningError) as refused:
        kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "saw a pallet in the corner")
    assert str(refused.value) == (
        "the values of 'Line clearance' are entered and corrected by operator, who sign it Performed; Quinn QA has "
        "the qa role. Lock the terminal (F12) so that someone with that role logs in and corrects them.")
    assert len(list(kiosk.store.iter_rows())) == before
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["line-clearance"] == "done"
    # A step that records no values has nothing to correct, whoever asks.
    register_recipe(kiosk, admin[0], tmp_path, NO_VALUES)
    kiosk.session.logout()
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    kiosk.signing.create_batch("S-1", "sop-read@1")
    kiosk.signing.sign(kiosk.signing.prepare("S-1", "read", "Performed", {}), PW, "jane.op", code(floor, "jane.op", clock))
    assert not kiosk.signing.may_enter_values("S-1", "read")
    with pytest.raises(SigningError, match="^'Read SOP-114' records no values, so there is nothing to correct$"):
        kiosk.signing.correct("S-1", "read", {}, "signed by mistake")


@pytest.mark.req("P11-70")
@pytest.mark.req("P11-10f")
def test_a_signature_given_in_error_is_withdrawn_by_its_signer_with_what_followed_it(kiosk, floor, clock):
    """The wrong batch: Jane's Performed is taken back with Omar's Verified of it; nothing is deleted."""
    from kiosk.domain import batches as bx
    from kiosk.services.signing import PasswordExposed

    clear_line(kiosk, floor, clock)
    assert kiosk.signing.withdrawable("B-1", "line-clearance") == "Performed"
    before = len(list(kiosk.store.iter_rows()))
    for meaning, reason, refusal in [
            ("Verified", "meant B-2", "^Verified on 'Line clearance' was signed by Omar Operator; only the person "
                                      "who signed it withdraws it as given in error$"),
            ("Performed", "no", "say why the signature was given in error"),
            ("Weighed", "meant B-2", "Weighed on 'Line clearance' is not signed")]:
        with pytest.raises(SigningError, match=refusal):
            kiosk.signing.withdraw("B-1", "line-clearance", meaning, reason)
    assert len(list(kiosk.store.iter_rows())) == before
    with pytest.raises(PasswordExposed):  # the reason field is no place for a password: it would be recorded
        kiosk.signing.withdraw("B-1", "line-clearance", "Performed", PW)
    assert "signature.invalidated" not in [r.type for r in kiosk.store.iter_rows()]
    new_pw = "a different long passphrase"
    assert kiosk.auth.change_password("jane.op", PW, new_pw, code(floor, "jane.op", clock)).ok
    taken = kiosk.signing.withdraw("B-1", "line-clearance", "Performed", "signed at the wrong batch, meant B-2")
    assert taken == ["line-clearance: signed in error: signed at the wrong batch, meant B-2",
                     "line-clearance: Performed on 'Line clearance' was withdrawn as signed in error, and this "
                     "Verified followed it: signed at the wrong batch, meant B-2"]
    rows = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows()][-2:]
    assert [(r.type, r.body["cause"], r.body["actor"]["user_id"]) for r in rows] == [
        ("signature.invalidated", "signed_in_error", "jane.op")] * 2
    state = kiosk.signing.batch("B-1")["steps"]["line-clearance"]
    assert state["values"] == {"area_clear": "yes"} and not any(s["valid"] for s in state["signatures"])
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["line-clearance"] == "needs_resign"
    assert kiosk.signing.withdrawable("B-1", "line-clearance") is None
    with pytest.raises(SigningError, match="is not signed, or has already been taken back"):
        kiosk.signing.withdraw("B-1", "line-clearance", "Performed", "signed at the wrong batch")
    review = bx.exceptions(kiosk.signing.recipe("buffer-prep@4"), kiosk.signing.batch("B-1"))
    assert review == [
        "Line clearance: Performed by Jane Operator taken back: signed in error: signed at the wrong batch, meant B-2",
        "Line clearance: Verified by Omar Operator taken back: Performed on 'Line clearance' was withdrawn as "
        "signed in error, and this Verified followed it: signed at the wrong batch, meant B-2"]
    # Done on this batch after all: signed again over the values that stay recorded.
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"}), new_pw)
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["line-clearance"] == "in_progress"


@pytest.mark.req("P11-70")
def test_withdrawing_a_step_takes_back_the_approvals_that_depend_on_it(kiosk, admin, floor, clock, tmp_path):
    small_lot_made(kiosk, admin, floor, clock, tmp_path)
    approved = kiosk.signing.prepare("L-1", "release", "Approved", {"deviations": "none"}, witness=True)
    kiosk.signing.witness(approved, "quinn.qa", PW, code(floor, "quinn.qa", clock))
    assert kiosk.signing.withdrawable("L-1", "release") is None  # Quinn's, not Jane's
    kiosk.signing.withdraw("L-1", "make", "Performed", "this lot was made on line 2")
    assert {s.step_id: s.status for s in kiosk.signing.steps("L-1")} == {"make": "needs_resign",
                                                                         "release": "locked"}
    last = parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0]
    assert (last.body["step_id"], last.body["reason"]) == (
        "release", "Performed on 'Make' was withdrawn as signed in error after this Approved: this lot was made "
                   "on line 2")


@pytest.mark.req("P11-70")
@pytest.mark.req("A11-8")
def test_after_a_correction_the_step_shows_and_signs_only_the_corrected_values(kiosk, floor, clock):
    from kiosk.ui_adapter import UiWork

    clear_line(kiosk, floor, clock)
    signed = {"balance_id": "BAL-7", "net_kg": "1.500"}
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "weigh-salts", "Performed", signed), PW)
    clock.advance(30)
    typed = {"balance_id": "BAL-7", "net_kg": "1.510"}
    kiosk.session.save_draft("B-1", "weigh-salts", typed)  # Jane starts to change it, then the terminal locks
    kiosk.session.lock(LockReason.IDLE)
    assert kiosk.session.login("omar.op", PW, code(floor, "omar.op", clock)).ok
    corrected = {"balance_id": "BAL-7", "net_kg": "1.501"}
    kiosk.signing.correct("B-1", "weigh-salts", corrected, "balance re-read")
    # Jane's typing from before the correction is not kept on disk, only to be hidden.
    assert LocalDrafts(kiosk.store, clock).load_draft("jane.op", "B-1", "weigh-salts") is None
    kiosk.session.logout()
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    # Jane's step shows what is recorded now, not what she typed before Omar's correction.
    work = UiWork(kiosk)
    assert work.step_detail("B-1", "weigh-salts").values == corrected
    # Signing again over other values would change a recorded value with no reason: refused.
    for other in (typed, signed):
        with pytest.raises(SigningError, match="differ from those recorded for this step"):
            kiosk.signing.prepare("B-1", "weigh-salts", "Performed", other)
    assert kiosk.signing.prepare("B-1", "weigh-salts", "Performed", corrected).content_hash
    # What is typed after the record is a draft again, and is what the step shows.
    clock.advance(5)
    kiosk.session.save_draft("B-1", "weigh-salts", {"balance_id": "BAL-8", "net_kg": "1.501"})
    assert work.step_detail("B-1", "weigh-salts").values["balance_id"] == "BAL-8"


@pytest.mark.req("P11-50")
def test_the_sign_dialog_shows_a_comment_that_will_be_recorded_with_the_signature(kiosk, floor, clock):
    from kiosk.ui_adapter import UiWork

    plain = UiWork(kiosk).prepare_signature("B-1", "line-clearance", "Performed", {"area_clear": "yes"}, "", "")
    assert not any(line.startswith("Comment") for line in plain.lines)
    noted = UiWork(kiosk).prepare_signature("B-1", "line-clearance", "Performed", {"area_clear": "yes"},
                                            "checked twice", "")
    assert "Comment: checked twice; deviation reference: -" in noted.lines


@pytest.mark.req("P11-10f")
def test_out_of_range_needs_comment_and_deviation(kiosk, floor, clock):
    clear_line(kiosk, floor, clock)
    with pytest.raises(SigningError, match="deviation reference"):
        kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.600"})
    with pytest.raises(SigningError, match="'1,5' is not a number; write decimals with a point: 1.5$"):
        kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1,5"})
    with pytest.raises(SigningError, match="'1,500.2' is not a number$"):  # a thousands separator: no guess
        kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1,500.2"})
    p = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.600"},
                              comment="balance re-checked", deviation_ref="DEV-2026-118")
    assert p.out_of_range


@pytest.mark.req("DI-ALCOA")
@pytest.mark.req("A11-14")
def test_replaying_the_records_rebuilds_identical_state(kiosk, floor, clock, tmp_path):
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"}),
                       PW, "jane.op", code(floor, "jane.op", clock))
    from kiosk.domain import batches, directory

    docs: dict = {}
    get = lambda kind, key: docs.get((kind, key))  # noqa: E731
    for row in kiosk.store.iter_rows():
        record = parse_raw(row.raw)[0]
        for kind, key, doc in directory.project(record, get) + batches.project(record, get):
            docs[(kind, key)] = doc
    assert docs[("batch_step", "B-1/line-clearance")]["signatures"][0]["user_id"] == "jane.op"
    with kiosk.store.read_engine().connect() as conn:
        stored = {(kind, key): json.loads(doc) for kind, key, doc in
                  conn.exec_driver_sql("SELECT kind, key, doc FROM directory").all()}
    assert stored == docs
    assert verify_local_store(kiosk.data_dir).ok


@pytest.mark.req("DI-ALCOA")
def test_replay_never_changes_a_document_it_was_given(kiosk, floor, clock):
    """A record's projection copies only the path to the step it changes and shares the rest of the batch
    with the stored document: no handler may change what it was given (signing, witnessing, correcting,
    invalidating), and the replayed state is still the stored one."""
    import copy

    from kiosk.domain import batches, directory

    clear_line(kiosk, floor, clock)
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "weigh-salts", "Performed",
                                             {"balance_id": "BAL-7", "net_kg": "1.500"}), PW)
    kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "area was not clear after all")
    docs: dict = {}
    handed: list = []

    def get(kind, key):
        doc = docs.get((kind, key))
        if doc is not None:
            handed.append((doc, copy.deepcopy(doc)))
        return doc

    types = set()
    for row in kiosk.store.iter_rows():
        record = parse_raw(row.raw)[0]
        types.add(record.type)
        changes = directory.project(record, get) + batches.project(record, get)
        assert all(doc == before for doc, before in handed), f"{record.type} changed a document it was given"
        handed.clear()
        for kind, key, doc in changes:
            docs[(kind, key)] = doc
    assert {"step.signed", "witness.signed", "step.corrected", "signature.invalidated"} <= types
    assert all(doc == kiosk.directory.get(kind, key) for (kind, key), doc in docs.items())
    assert [s["valid"] for s in docs[("batch_step", "B-1/line-clearance")]["signatures"]] == [False, False]
    assert [s["valid"] for s in docs[("batch_step", "B-1/weigh-salts")]["signatures"]] == [True]


@pytest.mark.req("DI-ALCOA")
def test_the_central_directory_derives_the_batch_record_the_kiosk_shows(kiosk, floor, clock, central):
    """The central derivation keeps the documents of one ingest transaction decoded and shared; a batch's
    signatures, witness, correction and invalidations arrive in one transaction and must derive the same
    batch record (and accounts) as the kiosk's own projection."""
    from kiosk.services.sync import SyncService
    from tests.storage.conftest import enroll

    clear_line(kiosk, floor, clock)
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "weigh-salts", "Performed",
                                             {"balance_id": "BAL-7", "net_kg": "1.500"}), PW)
    kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "area was not clear after all")
    sync = SyncService(kiosk.store, lambda: central, clock, batch_size=1000)
    sync.sync_once()
    enroll(central, kiosk.store)
    assert central.ledger_count(kiosk.store.chain) == kiosk.store.head().seq
    for kind, key in [("batch", "B-1"), ("batch_step", "B-1/line-clearance"), ("batch_step", "B-1/weigh-salts"),
                      ("user", "jane.op"), ("user", "omar.op")]:
        assert central.directory_doc(kind, key) == kiosk.directory.get(kind, key), (kind, key)
    assert kiosk.directory.get("batch_step", "B-1/weigh-salts")["signatures"]


def test_drafts_are_per_user_and_survive(kiosk, floor, clock):
    kiosk.session.save_draft("B-1", "line-clearance", {"area_clear": "ye"})
    kiosk.session.lock(LockReason.IDLE)
    assert kiosk.session.login("omar.op", PW, code(floor, "omar.op", clock)).ok
    assert kiosk.session.load_draft("B-1", "line-clearance") is None
    kiosk.session.logout()
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    assert kiosk.session.load_draft("B-1", "line-clearance") == {"area_clear": "ye"}


@pytest.mark.req("P11-300b")
def test_a_password_typed_into_a_value_is_never_signed_and_must_be_changed(kiosk, floor, clock):
    from kiosk.services.signing import PasswordExposed

    clear_line(kiosk, floor, clock)
    rows_before = len(list(kiosk.store.iter_rows()))
    typed = {"balance_id": PW, "net_kg": "1.500"}  # the password went into the balance field by mistake
    kiosk.session.save_draft("B-1", "dissolve", {"water_l": "100"})  # another draft, kept, on the same page
    kiosk.session.save_draft("B-1", "weigh-salts", typed)
    p = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", typed)
    with pytest.raises(PasswordExposed, match="Not signed: a value on this step is Jane Operator's password"):
        kiosk.signing.sign(p, PW)
    assert kiosk.session.load_draft("B-1", "weigh-salts") is None
    assert kiosk.session.load_draft("B-1", "dissolve") == {"water_l": "100"}
    # Nor in the database's free space or its write-ahead log (secure_delete, then the log truncated).
    files = [f for f in kiosk.data_dir.rglob("*") if f.is_file()]
    assert files and not [f.name for f in files if PW.encode() in f.read_bytes()]
    new_rows = list(kiosk.store.iter_rows())[rows_before:]
    assert [r.type for r in new_rows] == ["user.updated", "alert.raised"]
    assert not any(PW.encode() in r.raw for r in kiosk.store.iter_rows())  # in no record, ever
    assert any(a["kind"] == "credential.exposed" for a in kiosk.auth.alerts())
    jane = kiosk.auth.user("jane.op")
    assert jane.must_change_password and jane.password_exposed
    fixed = {"balance_id": "BAL-7", "net_kg": "1.500"}
    with pytest.raises(SigningError, match="Jane Operator must change their password before signing"):
        kiosk.signing.prepare("B-1", "weigh-salts", "Performed", fixed)
    assert kiosk.auth.change_password("jane.op", PW, "a different long passphrase", code(floor, "jane.op", clock)).ok
    assert not kiosk.auth.user("jane.op").must_change_password
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "weigh-salts", "Performed", fixed), "a different long passphrase")
    # A witness's password in the comment is refused the same way, and the witness must change theirs.
    witnessed = kiosk.signing.prepare("B-1", "weigh-salts", "Verified", fixed, witness=True, comment=f"ok {PW}")
    with pytest.raises(PasswordExposed, match="Omar Operator's password"):
        kiosk.signing.witness(witnessed, "omar.op", PW, code(floor, "omar.op", clock))
    assert kiosk.auth.user("omar.op").must_change_password
    # A correction asks for no password, so the stored hash tells: a value that is the password is refused.
    new_pw = "a different long passphrase"
    with pytest.raises(PasswordExposed, match="Correction not recorded: a value on this step is Jane Operator's"):
        kiosk.signing.correct("B-1", "weigh-salts", {"balance_id": new_pw, "net_kg": "1.500"}, "wrong balance")
    assert kiosk.auth.user("jane.op").must_change_password
    assert "step.corrected" not in [r.type for r in kiosk.store.iter_rows()]
    assert not any(secret.encode() in r.raw for r in kiosk.store.iter_rows() for secret in (PW, new_pw))


@pytest.mark.req("P11-100")
@pytest.mark.req("A11d-11")
def test_no_signature_before_first_use_statement_or_with_a_temporary_password(kiosk, admin, clock):
    actor, _ = admin
    issued = kiosk.auth.create_user(actor, "new.op", "New Operator", ["operator"], reason="starter", identity_verified=True)
    for path in shipped_recipes():
        kiosk.signing.register_recipe_file(path, actor.body(), "recipes")
    clock.advance(31)
    assert kiosk.session.login("new.op", issued.temporary_password, totp_now(issued.totp_secret, clock)).must_change_password
    kiosk.signing.create_batch("B-9", "buffer-prep@4")
    with pytest.raises(SigningError, match="electronic-signature statement"):
        kiosk.signing.prepare("B-9", "line-clearance", "Performed", {"area_clear": "yes"})
    kiosk.auth.accept_first_use(kiosk.auth.user("new.op"))
    with pytest.raises(SigningError, match="change their password"):
        kiosk.signing.prepare("B-9", "line-clearance", "Performed", {"area_clear": "yes"})
    rows = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "user.first_use_accepted"]
    assert rows and "legally binding" in rows[-1].body["statement"]


@pytest.mark.req("P11-200a1")
def test_a_restart_ends_the_open_session_with_a_record(kiosk, floor, clock):
    clear_line(kiosk, floor, clock)
    assert kiosk.session.session.signatures == 1
    kiosk.session.restart()  # what start-up does after a crash or power cut
    assert not kiosk.session.session.active and kiosk.session.session.last_owner == "jane.op"
    last = parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0]
    assert last.type == "session.locked" and last.body["reason"] == "restart"
    kiosk.session.restart()  # a clean start records nothing more
    assert parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0].id == last.id


QUALIFIED = '''
id = "sterile-fill"
version = 1
title = "Sterile filling"
[[steps]]
id = "fill"
title = "Aseptic fill"
fields = [{ name = "units", type = "integer", label = "Units filled" }]
signatures = [{ meaning = "Performed", roles = ["operator"], qualification = "aseptic-2026" }]
'''


@pytest.mark.req("P11-10i")
def test_a_signature_can_require_a_training_record(kiosk, admin, floor, clock, tmp_path):
    actor, _ = admin
    register_recipe(kiosk, actor, tmp_path, QUALIFIED)
    kiosk.signing.create_batch("S-1", "sterile-fill@1")
    with pytest.raises(SigningError, match="training record 'aseptic-2026'"):
        kiosk.signing.prepare("S-1", "fill", "Performed", {"units": "100"})
    kiosk.auth.update_user(actor, "jane.op", qualifications=["aseptic-2026"], reason="course passed 2026-11-20")
    assert kiosk.signing.prepare("S-1", "fill", "Performed", {"units": "100"}).components


SMALL_LOT = '''
id = "small-lot"
version = 1
title = "Small lot"
start_roles = ["supervisor", "qa"]
[[steps]]
id = "make"
title = "Make"
fields = [{ name = "units", type = "integer", label = "Units made" }]
signatures = [{ meaning = "Performed", roles = ["operator"] }]
[[steps]]
id = "release"
title = "QA review and release"
fields = [{ name = "deviations", type = "choice", label = "Deviations", choices = ["none", "closed", "open"] }]
signatures = [
  { meaning = "Approved", roles = ["qa"] },
  { meaning = "Released", roles = ["qa"], requires = { deviations = ["none", "closed"] } },
]
'''


def small_lot_made(kiosk, admin, floor, clock, tmp_path):
    """Small lot L-1, started by QA, its 'make' step performed by Jane (logged in afterwards)."""
    register_recipe(kiosk, admin[0], tmp_path, SMALL_LOT)
    kiosk.session.logout()
    assert kiosk.session.login("quinn.qa", PW, code(floor, "quinn.qa", clock)).ok
    kiosk.signing.create_batch("L-1", "small-lot@1")
    kiosk.session.logout()
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    kiosk.signing.sign(kiosk.signing.prepare("L-1", "make", "Performed", {"units": "40"}), PW, "jane.op",
                       code(floor, "jane.op", clock))


@pytest.mark.req("P11-10g")
@pytest.mark.req("P11-10f")
def test_a_recipe_decides_who_starts_batches_release_waits_for_closed_deviations_and_a_later_correction_undoes_it(
        kiosk, admin, floor, clock, tmp_path):
    actor, _ = admin
    register_recipe(kiosk, actor, tmp_path, SMALL_LOT)
    with pytest.raises(SigningError, match="batches of small-lot@1 are started by supervisor or qa, not by operator"):
        kiosk.signing.create_batch("L-1", "small-lot@1")
    assert kiosk.directory.get("batch", "L-1") is None
    kiosk.session.logout()
    assert kiosk.session.login("quinn.qa", PW, code(floor, "quinn.qa", clock)).ok
    kiosk.signing.create_batch("L-1", "small-lot@1")
    assert kiosk.signing.summary("L-1").status == "not_started"
    kiosk.session.logout()
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    kiosk.signing.sign(kiosk.signing.prepare("L-1", "make", "Performed", {"units": "40"}), PW, "jane.op",
                       code(floor, "jane.op", clock))
    assert kiosk.signing.summary("L-1") == type(kiosk.signing.summary("L-1"))("in_progress", 1, 2)

    def qa_signs(meaning, deviations):
        prepared = kiosk.signing.prepare("L-1", "release", meaning, {"deviations": deviations}, witness=True)
        kiosk.signing.witness(prepared, "quinn.qa", PW, code(floor, "quinn.qa", clock))

    qa_signs("Approved", "open")  # approving the record with a deviation open is the recipe's choice
    before = len(list(kiosk.store.iter_rows()))
    with pytest.raises(SigningError, match="Released needs Deviations to be none or closed; it is 'open' "
                                           r"\(a rule of the recipe\)"):
        qa_signs("Released", "open")
    assert len(list(kiosk.store.iter_rows())) == before  # nothing was recorded
    # QA's entry is corrected by QA: an operator's correction would take back QA's own signature (11.10(g)).
    with pytest.raises(SigningError, match="the values of 'QA review and release' are entered and corrected by "
                                           "qa, who sign it Approved; Jane Operator has the operator role. Lock"):
        kiosk.signing.correct("L-1", "release", {"deviations": "closed"}, "DEV-2026-118 closed by QA")
    assert len(list(kiosk.store.iter_rows())) == before
    kiosk.session.logout()
    assert kiosk.session.login("quinn.qa", PW, code(floor, "quinn.qa", clock)).ok
    kiosk.signing.correct("L-1", "release", {"deviations": "closed"}, "DEV-2026-118 closed by QA")
    corrected = next(r for r in reversed([parse_raw(r.raw)[0] for r in kiosk.store.iter_rows()])
                     if r.type == "step.corrected")
    assert corrected.body["actor"]["user_id"] == "quinn.qa" and corrected.body["actor"]["role"] == "qa"
    kiosk.session.logout()
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    assert kiosk.signing.summary("L-1").status == "needs_resign"
    qa_signs("Approved", "closed")
    assert kiosk.signing.summary("L-1").status == "in_progress"
    qa_signs("Released", "closed")
    assert kiosk.signing.summary("L-1") == type(kiosk.signing.summary("L-1"))("released", 2, 2)
    # A correction of the batch after its release takes the approval and the release back: QA decides again.
    kiosk.signing.correct("L-1", "make", {"units": "41"}, "count re-checked")
    rows = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows()][-4:]
    assert [r.type for r in rows] == ["step.corrected"] + ["signature.invalidated"] * 3
    assert [(r.body["step_id"], r.body["reason"]) for r in rows[2:]] == [
        ("release", "'Make' corrected after this Approved: count re-checked"),
        ("release", "'Make' corrected after this Released: count re-checked")]
    assert {s.step_id: s.status for s in kiosk.signing.steps("L-1")} == {"make": "needs_resign",
                                                                         "release": "locked"}
    kiosk.signing.sign(kiosk.signing.prepare("L-1", "make", "Performed", {"units": "41"}), PW, "jane.op",
                       code(floor, "jane.op", clock))  # the first signature since this login
    assert {s.step_id: s.status for s in kiosk.signing.steps("L-1")}["release"] == "needs_resign"
    assert kiosk.signing.summary("L-1").status == "needs_resign"
    with pytest.raises(SigningError, match="differ from those recorded for this step"):
        qa_signs("Approved", "none")  # what QA recorded stands until a correction changes it
    qa_signs("Approved", "closed")
    qa_signs("Released", "closed")
    assert kiosk.signing.summary("L-1").status == "released"
    with pytest.raises(SigningError, match="nothing is recorded for this step yet to correct"):
        kiosk.signing.correct("B-1", "weigh-salts", {"balance_id": "BAL-7", "net_kg": "1.500"}, "early")


@pytest.mark.req("P11-10k")
@pytest.mark.req("A11-10")
def test_recipes_are_versioned_records_and_every_signature_names_the_version(kiosk, admin, floor, clock, tmp_path):
    actor, _ = admin
    registered = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "recipe.registered"]
    assert {r.body["key"] for r in registered} == {"buffer-prep@4", "tablet-compression@8"}
    changed = tmp_path / "buffer.toml"
    changed.write_text((shipped_recipes()[0]).read_text().replace('"1.480"', '"1.400"'))
    with pytest.raises(RecipeError, match="raise the version"):
        kiosk.signing.register_recipe_file(changed, actor.body(), "edited limits")
    with pytest.raises(SigningError, match=r"give a reason \(at least 4 characters\); it is recorded with the recipe"):
        kiosk.signing.register_recipe_file(changed, actor.body(), " ok ")
    clear_line(kiosk, floor, clock)
    signed = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type in ("step.signed", "witness.signed")]
    assert all(s.body["recipe_key"] == "buffer-prep@4" for s in signed)
    assert signed and all(s.body["kiosk_version"] == __version__ for s in signed)  # and the software's


@pytest.mark.req("P11-10k")
@pytest.mark.req("A11-10")
def test_new_batches_start_from_the_current_recipe_version_only(kiosk, admin, floor, clock, tmp_path):
    from kiosk.ui_adapter import UiWork

    actor, _ = admin
    shipped = next(p for p in shipped_recipes() if p.name == "buffer-preparation.toml").read_text()
    register_recipe(kiosk, actor, tmp_path, shipped.replace("version = 4", "version = 5").replace('"1.480"', '"1.470"'))
    assert kiosk.signing.superseded() == {"buffer-prep@4": "buffer-prep@5"}
    with pytest.raises(SigningError, match="buffer-prep@4 is superseded by buffer-prep@5; start the batch from the "
                                           "current version"):
        kiosk.signing.create_batch("B-2", "buffer-prep@4")
    assert kiosk.directory.get("batch", "B-2") is None
    assert [r.key for r in UiWork(kiosk).recipes()] == ["tablet-compression@8", "buffer-prep@5"]  # the choices
    kiosk.signing.create_batch("B-2", "buffer-prep@5")
    clear_line(kiosk, floor, clock)  # B-1, started from @4, is finished on @4
    signed = [parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "step.signed"]
    assert signed[-1].body["batch_id"] == "B-1" and signed[-1].body["recipe_key"] == "buffer-prep@4"


@pytest.mark.req("P11-10k")
@pytest.mark.req("A11-10")
def test_a_version_registered_ahead_takes_effect_at_the_start_of_its_day_in_site_time(
        kiosk, admin, floor, clock, tmp_path):
    import datetime as dt

    from kiosk.domain.clock import UTC
    from kiosk.ui_adapter import UiWork

    actor, _ = admin
    shipped = next(p for p in shipped_recipes() if p.name == "buffer-preparation.toml").read_text()
    ahead = shipped.replace("version = 4", 'version = 5\neffective_from = "2026-11-25"')
    register_recipe(kiosk, actor, tmp_path, ahead)
    assert kiosk.signing.pending() == {"buffer-prep@5": "2026-11-25"} and kiosk.signing.superseded() == {}
    with pytest.raises(SigningError, match=r"buffer-prep@5 takes effect on 2026-11-25 \(site time\); until then, "
                                           "start the batch from the version in effect"):
        kiosk.signing.create_batch("B-2", "buffer-prep@5")
    assert [r.key for r in UiWork(kiosk).recipes()] == ["tablet-compression@8", "buffer-prep@4"]
    kiosk.signing.create_batch("B-2", "buffer-prep@4")
    # Dublin is on UTC in November: the last second of the 24th, then the first of the 25th.
    clock.advance((dt.datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC) - clock.now()).total_seconds())
    assert kiosk.signing.today() == "2026-11-24" and kiosk.signing.pending()
    clock.advance(1)
    assert kiosk.signing.pending() == {} and kiosk.signing.superseded() == {"buffer-prep@4": "buffer-prep@5"}
    kiosk.session.logout()
    assert kiosk.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
    kiosk.signing.create_batch("B-3", "buffer-prep@5")
    with pytest.raises(SigningError, match="buffer-prep@4 is superseded by buffer-prep@5"):
        kiosk.signing.create_batch("B-4", "buffer-prep@4")


@pytest.mark.req("A11d-13")
def test_policy_can_demand_full_authentication_at_every_signature(tmp_path, clock):
    from kiosk.app import build_kiosk, shipped_recipes as recipes
    from kiosk.config import KioskConfig
    from kiosk.domain.passwords import PasswordHasher

    config = KioskConfig().replace(session={"full_auth_every_signature": True})
    k = build_kiosk(config, tmp_path / "strict", clock, device_id="line-4",
                    hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    k.auth.bootstrap("site.admin", "Ada Admin")
    actor = Actor("site.admin", "Ada Admin", "admin")
    op = k.auth.create_user(actor, "jane.op", "Jane Operator", ["operator"], reason="starter", identity_verified=True)
    clock.advance(31)
    k.auth.change_password("jane.op", op.temporary_password, PW, totp_now(op.totp_secret, clock))
    k.auth.accept_first_use(k.auth.user("jane.op"))
    for path in recipes():
        k.signing.register_recipe_file(path, actor.body(), "recipes")
    clock.advance(31)
    k.session.login("jane.op", PW, totp_now(op.totp_secret, clock))
    k.signing.create_batch("B-1", "buffer-prep@4")
    k.signing.create_batch("B-2", "buffer-prep@4")
    clock.advance(31)
    first = k.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})
    k.signing.sign(first, PW, "jane.op", totp_now(op.totp_secret, clock))
    second = k.signing.prepare("B-2", "line-clearance", "Performed", {"area_clear": "yes"})
    assert second.components == ("user_id", "password", "totp")
    assert second.preview.user_id == "jane.op" and second.preview.role == "operator"
    k.close()


class DuringPasswordCheck:
    """The real hasher, plus something else happening on the kiosk while argon2 runs (a pull, another thread)."""

    def __init__(self, real, happening):
        self.real, self.happening = real, happening

    def verify(self, stored, password):
        ok = self.real.verify(stored, password)
        happening, self.happening = self.happening, None
        if happening is not None:
            happening()
        return ok

    def __getattr__(self, name):
        return getattr(self.real, name)


def _signed_count(kiosk):
    return sum(1 for r in kiosk.store.iter_rows() if r.type == "step.signed")


@pytest.mark.req("P11-10g")
@pytest.mark.req("P11-200a1")
def test_an_account_deactivated_while_its_password_is_checked_cannot_sign(kiosk, admin, floor, clock):
    """The session owner is checked again inside the append transaction, after authentication."""
    actor, _ = admin
    p = kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})
    before = _signed_count(kiosk)
    kiosk.auth.hasher = DuringPasswordCheck(kiosk.auth.hasher, lambda: kiosk.auth.update_user(
        actor, "jane.op", status="deactivated", reason="left the company"))
    with pytest.raises(Exception, match="no longer active"):
        kiosk.signing.sign(p, PW, "jane.op", code(floor, "jane.op", clock))
    assert _signed_count(kiosk) == before
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["line-clearance"] == "open"


@pytest.mark.req("P11-10f")
def test_a_prerequisite_invalidated_while_the_password_is_checked_blocks_the_signature(kiosk, floor, clock):
    """Sequencing is decided inside the append transaction, not only when the dialog opened."""
    clear_line(kiosk, floor, clock)
    p = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    before = _signed_count(kiosk)
    kiosk.auth.hasher = DuringPasswordCheck(kiosk.auth.hasher, lambda: kiosk.signing.correct(
        "B-1", "line-clearance", {"area_clear": "no"}, "area was not clear after all"))
    with pytest.raises(SigningError, match="sign 'Line clearance' first"):
        kiosk.signing.sign(p, PW)
    assert _signed_count(kiosk) == before
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["weigh-salts"] == "locked"
    assert verify_local_store(kiosk.data_dir).ok


@pytest.mark.req("P11-200a3")
def test_a_witness_suspended_while_their_password_is_checked_cannot_sign(kiosk, admin, floor, clock):
    actor, _ = admin
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"}),
                       PW, "jane.op", code(floor, "jane.op", clock))
    w = kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "yes"}, witness=True)
    kiosk.auth.hasher = DuringPasswordCheck(kiosk.auth.hasher, lambda: kiosk.auth.update_user(
        actor, "omar.op", status="deactivated", reason="left the company"))
    with pytest.raises(SigningError, match="no longer active"):
        kiosk.signing.witness(w, "omar.op", PW, code(floor, "omar.op", clock))
    assert not any(r.type == "witness.signed" for r in kiosk.store.iter_rows())


def test_a_refused_signature_leaves_the_store_ready_for_the_next(kiosk, floor, clock):
    """A rule refusal inside the transaction rolls back; the next signature commits normally."""
    p = kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})
    kiosk.signing.sign(p, PW, "jane.op", code(floor, "jane.op", clock))
    with pytest.raises(SigningError, match="already signed"):  # the same dialog sent again
        kiosk.signing.sign(p, PW, "jane.op", code(floor, "jane.op", clock))
    kiosk.signing.witness(kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "yes"},
                                                witness=True), "omar.op", PW, code(floor, "omar.op", clock))
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["line-clearance"] == "done"
    assert verify_local_store(kiosk.data_dir).ok


def test_the_signing_transaction_never_waits_for_the_session_lock(kiosk, floor, clock):
    """Session transitions (login, lock, idle timeout) append while holding the session lock, so the
    checks inside a signature's append transaction must never take it: the two would deadlock."""
    import threading

    p = kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})
    totp = code(floor, "jane.op", clock)
    in_transaction = threading.Event()
    kiosk.store.projectors.append(lambda db, signed, reader=None: signed.record.type == "step.signed" and in_transaction.set())
    seen_while_held = []
    held = threading.Event()

    def hold_the_session_lock():
        with kiosk.session._lock:  # what a lock or timeout on the UI thread holds while it appends
            held.set()
            seen_while_held.append(in_transaction.wait(timeout=30))

    holder = threading.Thread(target=hold_the_session_lock)
    holder.start()
    held.wait()
    kiosk.signing.sign(p, PW, "jane.op", totp)
    holder.join()
    assert seen_while_held == [True]


# -- the rules inside the transaction, when the dialog's verdict is reused ----------------------------------
# sign() reuses the dialog's directory-dependent verdict only while the account, the batch and the inputs are
# equal to what it was reached on; the session- and time-dependent rules are always decided again.

def clearance(kiosk):
    """The dialog for line clearance of B-1, Performed, area clear."""
    return kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})


def jane_signs(kiosk, floor, clock, prepared):
    """The session owner signs with every component."""
    return kiosk.signing.sign(prepared, PW, "jane.op", code(floor, "jane.op", clock))


@pytest.mark.req("P11-10i")
def test_a_training_record_withdrawn_while_the_password_is_checked_blocks_the_signature(
        kiosk, admin, floor, clock, tmp_path):
    actor, _ = admin
    register_recipe(kiosk, actor, tmp_path, QUALIFIED)
    kiosk.signing.create_batch("S-1", "sterile-fill@1")
    kiosk.auth.update_user(actor, "jane.op", qualifications=["aseptic-2026"], reason="course passed 2026-11-20")
    p = kiosk.signing.prepare("S-1", "fill", "Performed", {"units": "100"})
    kiosk.auth.hasher = DuringPasswordCheck(kiosk.auth.hasher, lambda: kiosk.auth.update_user(
        actor, "jane.op", qualifications=[], reason="training record withdrawn"))
    with pytest.raises(SigningError, match="training record 'aseptic-2026'"):
        jane_signs(kiosk, floor, clock, p)
    assert _signed_count(kiosk) == 0


@pytest.mark.req("P11-10g")
def test_a_role_withdrawn_while_the_password_is_checked_blocks_the_signature(kiosk, admin, floor, clock):
    actor, _ = admin
    p = clearance(kiosk)
    kiosk.auth.hasher = DuringPasswordCheck(kiosk.auth.hasher, lambda: kiosk.auth.update_user(
        actor, "jane.op", roles=["qa"], reason="moved to QA"))
    with pytest.raises(SigningError, match=r"Performed on this step is signed by operator; Jane Operator has the qa "
                                           r"role. Lock the terminal \(F12\) so that someone with that role logs in"):
        jane_signs(kiosk, floor, clock, p)
    assert _signed_count(kiosk) == 0


@pytest.mark.req("P11-70")
def test_a_prepared_signature_changed_after_the_dialog_opened_is_judged_afresh(kiosk, floor, clock):
    """A Prepared is a plain value: whatever edits it, what is signed is judged for what it now says."""
    p = clearance(kiosk)
    edited = dataclasses.replace(p, values=(("area_clear", "no"),))
    with pytest.raises(SigningError, match="changed while the dialog was open"):
        jane_signs(kiosk, floor, clock, edited)
    other_step = dataclasses.replace(p, step_id="weigh-salts")
    with pytest.raises(SigningError, match="sign 'Line clearance' first"):
        jane_signs(kiosk, floor, clock, other_step)
    assert _signed_count(kiosk) == 0
    record = jane_signs(kiosk, floor, clock, p)
    assert record["values"] == {"area_clear": "yes"} and record["content_hash"] == p.content_hash


def test_time_dependent_rules_are_decided_at_signing_even_when_nothing_else_changed(kiosk, floor, clock):
    p = clearance(kiosk)
    kiosk.signing.clock_suspect = lambda reader=None: True   # what a clock stepped back shows
    with pytest.raises(SigningError, match="clock is behind"):
        jane_signs(kiosk, floor, clock, p)
    kiosk.signing.clock_suspect = lambda reader=None: False
    kiosk.auth.passwords = dataclasses.replace(kiosk.auth.passwords, max_age_days=90)
    clock.advance(91 * 86400)
    kiosk.session.activity()
    with pytest.raises(SigningError, match="must change their password"):
        jane_signs(kiosk, floor, clock, p)
    assert _signed_count(kiosk) == 0


@pytest.mark.req("P11-50")
def test_the_signature_time_is_the_moment_of_signing_not_of_the_dialog(kiosk, floor, clock):
    p = clearance(kiosk)
    clock.advance(45)
    record = jane_signs(kiosk, floor, clock, p)
    assert record["manifestation"]["signed_at"] > p.preview.signed_at
    assert record["manifestation"]["signed_at"] == format_ts(clock.now())


CANCELLED = "batch B-1 was cancelled by Quinn QA \\(qa\\) at .* UTC: started against the wrong order. Nothing more"


@pytest.mark.req("P11-10g")
@pytest.mark.req("DI-ALCOA")
def test_a_batch_started_in_error_is_cancelled_by_qa_with_a_reason_and_nothing_more_is_recorded_on_it(
        kiosk, floor, clock, central):
    from kiosk.domain import batches
    from kiosk.domain.directory import DirectoryConflict
    from kiosk.services.sync import SyncService
    from tests.storage.conftest import enroll

    clear_line(kiosk, floor, clock)
    kiosk.session.save_draft("B-1", "weigh-salts", {"balance_id": "BAL-7"})  # typing in progress
    rows = len(list(kiosk.store.iter_rows()))
    why = "started against the wrong order"
    with pytest.raises(SigningError, match="give a reason for cancelling the batch"):
        kiosk.signing.cancel_batch("B-1", "no", "quinn.qa", PW, code(floor, "quinn.qa", clock))
    with pytest.raises(SigningError, match="no batch B-9"):
        kiosk.signing.cancel_batch("B-9", why, "quinn.qa", PW, code(floor, "quinn.qa", clock))
    with pytest.raises(AuthError, match="Invalid"):
        kiosk.signing.cancel_batch("B-1", why, "quinn.qa", "not the password", code(floor, "quinn.qa", clock))
    with pytest.raises(SigningError, match="cancelled by a supervisor or QA; Jane Operator is neither"):
        kiosk.signing.cancel_batch("B-1", why, "jane.op", PW, code(floor, "jane.op", clock))
    assert "batch.cancelled" not in {r.type for r in list(kiosk.store.iter_rows())[rows:]}
    assert kiosk.signing.summary("B-1").status == "in_progress"
    body = kiosk.signing.cancel_batch("B-1", why, "quinn.qa", PW, code(floor, "quinn.qa", clock))
    assert body["actor"] == {"user_id": "quinn.qa", "name": "Quinn QA", "role": "qa"}
    assert body["old"] == {"status": "in_progress"} and body["new"] == {"status": "cancelled"}
    assert body["auth"]["components"] == ["user_id", "password", "totp"] and body["reason"] == why
    assert kiosk.signing.summary("B-1").status == "cancelled"
    assert kiosk.session.load_draft("B-1", "weigh-salts") is None  # it would never be signed
    with pytest.raises(SigningError, match=CANCELLED):
        kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    with pytest.raises(SigningError, match=CANCELLED):
        kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "area was not clear")
    with pytest.raises(SigningError, match=CANCELLED):
        kiosk.signing.cancel_batch("B-1", why, "quinn.qa", PW, code(floor, "quinn.qa", clock))
    # What was recorded stays: line clearance is still performed and verified.
    assert [s["valid"] for s in kiosk.signing.batch("B-1")["steps"]["line-clearance"]["signatures"]] == [True, True]
    # A signature made offline on another terminal before the cancellation reached it is not applied.
    signed = next(parse_raw(r.raw)[0] for r in kiosk.store.iter_rows() if r.type == "step.signed")
    cancelled = kiosk.directory.get("batch", "B-1")
    with pytest.raises(DirectoryConflict, match=CANCELLED):
        batches.project(signed, lambda kind, key: cancelled if (kind, key) == ("batch", "B-1") else None)
    # The central store derives the same cancelled batch.
    SyncService(kiosk.store, lambda: central, clock, batch_size=1000).sync_once()
    enroll(central, kiosk.store)
    assert central.directory_doc("batch", "B-1") == cancelled and cancelled["cancelled"]["by"] == "quinn.qa"


@pytest.mark.req("P11-10g")
def test_a_released_batch_is_not_cancelled(kiosk, admin, floor, clock, tmp_path):
    small_lot_made(kiosk, admin, floor, clock, tmp_path)
    for meaning in ("Approved", "Released"):
        prepared = kiosk.signing.prepare("L-1", "release", meaning, {"deviations": "none"}, witness=True)
        kiosk.signing.witness(prepared, "quinn.qa", PW, code(floor, "quinn.qa", clock))
    assert kiosk.signing.summary("L-1").status == "released"
    with pytest.raises(SigningError, match="batch L-1 is released; a released batch is not cancelled"):
        kiosk.signing.cancel_batch("L-1", "no longer needed", "quinn.qa", PW, code(floor, "quinn.qa", clock))


@pytest.mark.req("A11-8")
@pytest.mark.req("P11-10e")
def test_review_by_exception_lists_what_a_reviewer_must_look_at_in_recipe_order(kiosk, floor, clock):
    from kiosk.domain import batches as bx

    recipe = kiosk.signing.recipe("buffer-prep@4")
    assert bx.exceptions(recipe, kiosk.signing.batch("B-1")) == []
    clear_line(kiosk, floor, clock)
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "weigh-salts", "Performed",
                                             {"balance_id": "BAL-7", "net_kg": "1.600"},
                                             comment="balance re-checked", deviation_ref="DEV-2026-118"), PW)
    assert bx.exceptions(recipe, kiosk.signing.batch("B-1")) == [
        "Weigh sodium phosphate: Net weight: 1.600 kg is outside 1.480 .. 1.520 kg",
        "Weigh sodium phosphate: Performed by Jane Operator with comment 'balance re-checked', "
        "deviation 'DEV-2026-118'"]
    clock.advance(60)
    kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "a pallet was left behind")
    review = bx.exceptions(recipe, kiosk.signing.batch("B-1"))
    assert review[0].startswith("Line clearance: corrected by jane.op (") and review[0].endswith(
        " UTC): a pallet was left behind")
    assert review[1] == "Line clearance: 2 signatures taken back by a correction"
    assert len(review) == 4  # the weighing's two stay


@pytest.mark.req("P11-10f")
def test_review_by_exception_shows_a_verification_an_older_terminal_recorded_before_the_performance(
        kiosk, floor, clock):
    """Terminals before 0.4.0 did not keep a step's signatures in the recipe's order; QA sees where it happened."""
    from kiosk.domain import batches as bx
    from kiosk.services.signing import Manifestation

    values = {"area_clear": "yes"}
    performed = kiosk.signing.prepare("B-1", "line-clearance", "Performed", values)
    verified = dataclasses.replace(performed, meaning="Verified", witness=True)  # as an older terminal wrote it
    when = format_ts(clock.now())
    manifestation = Manifestation("Omar Operator", "omar.op", "operator", "Verified", when, clock.zone,
                                  kiosk.store.chain.rpartition(":")[0])
    body = kiosk.signing._signature_body(verified, kiosk.signing.batch("B-1"), manifestation,
                                         {"components": ["user_id", "password", "totp"]})
    kiosk.store.append_many([("witness.signed", body)])
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", values), PW, "jane.op",
                       code(floor, "jane.op", clock))
    recipe = kiosk.signing.recipe("buffer-prep@4")
    assert bx.exceptions(recipe, kiosk.signing.batch("B-1")) == [
        "Line clearance: Verified by Omar Operator is not preceded by Performed, which the recipe lists before it"]


@pytest.mark.req("P11-10g")
def test_review_by_exception_lists_a_correction_by_a_role_that_does_not_enter_the_values(kiosk, floor, clock):
    """Terminals before 0.5.0 let anyone logged in correct a step; QA sees where it happened."""
    from kiosk.domain import batches as bx
    from kiosk.domain.audit import actor, target

    clear_line(kiosk, floor, clock)
    kiosk.store.append_many([("step.corrected", {  # as an older terminal wrote it, for Quinn QA
        "actor": actor("quinn.qa", "Quinn QA", "qa"), "target": target("step", "B-1/line-clearance"),
        "batch_id": "B-1", "step_id": "line-clearance", "old": {"area_clear": "yes"}, "new": {"area_clear": "no"},
        "reason": "saw a pallet", "supersedes": kiosk.signing.batch("B-1")["steps"]["line-clearance"]["content_hash"],
    })])
    kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "yes"}, "pallet was the next batch's")
    review = bx.exceptions(kiosk.signing.recipe("buffer-prep@4"), kiosk.signing.batch("B-1"))
    assert [line for line in review if " as " in line] == [
        "Line clearance: corrected by quinn.qa as qa; its values are entered and corrected by operator"]
    assert sum("corrected by" in line for line in review) == 3  # both corrections, and the one flag


@pytest.mark.req("P11-10g")
def test_a_meaning_the_session_owner_cannot_sign_is_refused_before_any_value_is_checked(kiosk, floor, clock):
    kiosk.session.logout()
    assert kiosk.session.login("quinn.qa", PW, code(floor, "quinn.qa", clock)).ok
    with pytest.raises(SigningError, match=r"^Performed on this step is signed by operator; Quinn QA has the qa role\. "
                                           r"Lock the terminal \(F12\) so that someone with that role logs in and "
                                           r"signs it\.$"):
        kiosk.signing.prepare("B-1", "line-clearance", "Performed", {})  # nothing typed yet: the role decides


@pytest.mark.req("P11-10f")
def test_a_steps_signatures_are_given_in_the_order_its_recipe_lists_them(kiosk, floor, clock):
    """A verification recorded before the work it verifies reads as a record written after the fact."""
    values = {"area_clear": "yes"}
    first = "Verified follows Performed on this step, and Performed is not signed yet"
    for witness in (False, True):  # neither the session owner nor a second person
        with pytest.raises(SigningError, match=first):
            kiosk.signing.prepare("B-1", "line-clearance", "Verified", values, witness=witness)
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", values), PW, "jane.op",
                       code(floor, "jane.op", clock))
    second = kiosk.signing.prepare("B-1", "line-clearance", "Verified", values, witness=True)
    # The Performed signature is taken back while the second person's dialog is open: checked again on signing.
    kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "area was not clear after all")
    with pytest.raises(SigningError, match=first):
        kiosk.signing.witness(second, "omar.op", PW, code(floor, "omar.op", clock))
    assert not any(s["meaning"] == "Verified" for s in kiosk.signing.batch("B-1")["steps"]["line-clearance"]["signatures"])
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "no"}), PW)
    kiosk.signing.witness(kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "no"}, witness=True),
                          "omar.op", PW, code(floor, "omar.op", clock))
    assert {s.step_id: s.status for s in kiosk.signing.steps("B-1")}["line-clearance"] == "done"


@pytest.mark.req("P11-10f")
def test_a_new_recipe_lists_a_second_persons_check_after_what_it_checks(kiosk, admin, floor, tmp_path):
    actor, _ = admin
    backwards = SMALL_LOT.replace('version = 1', 'version = 2').replace(
        'signatures = [{ meaning = "Performed", roles = ["operator"] }]',
        'signatures = [{ meaning = "Verified", roles = ["operator"], distinct_from = ["Performed"] },\n'
        '              { meaning = "Performed", roles = ["operator"] }]')
    assert backwards != SMALL_LOT
    with pytest.raises(RecipeError, match="step 'make': Verified must differ from Performed, so list Performed "
                                          "before it"):
        register_recipe(kiosk, actor, tmp_path, backwards)
    assert kiosk.directory.get("recipe", "small-lot@2") is None


def test_a_batch_is_found_by_its_id_in_any_case_or_by_the_one_id_holding_the_text(kiosk, floor, clock):
    for bid in ("B-2", "B-20", "LOT-7"):
        clock.advance(1)
        kiosk.signing.create_batch(bid, "buffer-prep@4")
    assert kiosk.signing.find_batch(" B-2 ") == "B-2"   # exact, though B-20 holds it too
    assert kiosk.signing.find_batch("lot-7") == "LOT-7"  # without case, as a scanner or a glove types it
    assert kiosk.signing.find_batch("t-") == "LOT-7"     # the one id that holds it
    with pytest.raises(SigningError, match=r"^3 batches hold that text: B-1, B-2, B-20\. Type more of the id\.$"):
        kiosk.signing.find_batch("b-")
    with pytest.raises(SigningError, match="^no batch on this terminal has that id; a batch started on another "
                                           "terminal is here after its next sync$"):
        kiosk.signing.find_batch(PW)  # and what was typed is not repeated: it may be a password
    with pytest.raises(SigningError, match="scan or type a batch id"):
        kiosk.signing.find_batch("  ")


def test_a_batch_id_is_not_used_twice_in_another_case(kiosk, floor, clock):
    """PB-2026-001 and pb-2026-001 on one floor would be one batch to its people and two in the record."""
    with pytest.raises(SigningError, match=r"^batch B-1 already exists \(batch ids are compared without case\)$"):
        kiosk.signing.create_batch("b-1", "buffer-prep@4")
    with pytest.raises(SigningError, match="^batch B-1 already exists$"):
        kiosk.signing.create_batch("B-1", "buffer-prep@4")
    assert kiosk.directory.get("batch", "b-1") is None
