"""The write connection remembers directory documents between signing transactions.

That memory must never let a signature land on a state the database no longer
holds: whatever another connection commits (another process on the same
store, a directory pull, a restore) and whatever a failed transaction half did,
the next signing transaction sees the database as it is.
"""

import pytest

from kiosk.app import build_kiosk
from kiosk.domain.passwords import PasswordHasher
from kiosk.services.auth import Actor
from kiosk.services.session import SessionError
from kiosk.services.signing import SigningError
from kiosk.domain.directory import DirectoryConflict
from tests.services.conftest import CHEAP
from tests.services.test_signing import PW, code, floor  # noqa: F401 - the fixture

ACTOR = Actor("site.admin", "Ada Admin", "admin")


class DuringArgon2(PasswordHasher):
    """Runs ``hook`` inside the next password check: after the sign-in reads, before the append transaction."""

    hook = None

    def verify(self, stored: str, password: str) -> bool:
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return super().verify(stored, password)


def _weigh(kiosk):
    return kiosk.signing.prepare("B-1", "line-clearance", "Performed", {"area_clear": "yes"})


@pytest.mark.req("P11-10d")
def test_an_account_deactivated_by_another_process_is_seen_by_the_signing_transaction(kiosk, floor, clock, config):
    # Warm the write connection's memory of jane's account and the batch.
    kiosk.signing.create_batch("B-2", "buffer-prep@4")
    hasher = DuringArgon2(**CHEAP)
    kiosk.auth.hasher = hasher
    other = build_kiosk(config, kiosk.data_dir, clock, device_id="line-1", hasher=PasswordHasher(**CHEAP))
    try:
        prepared = _weigh(kiosk)
        # Another connection (here: a second kiosk process on the same store) deactivates jane after the
        # sign-in reads passed and before the signature's transaction starts.
        hasher.hook = lambda: other.auth.update_user(ACTOR, "jane.op", reason="left the company",
                                                     status="deactivated")
        with pytest.raises(SessionError, match="no longer active"):
            kiosk.signing.sign(prepared, PW, "jane.op", code(floor, "jane.op", clock))
    finally:
        other.close()
    assert not any(r.type == "step.signed" for r in kiosk.store.iter_rows())


@pytest.mark.req("P11-10d")
def test_the_sign_in_reads_see_an_account_deactivated_by_another_process(kiosk, floor, clock, config):
    """The password check reads the account through the write connection's memory (the last signature
    left it there); a deactivation another process committed since must be what that check sees."""
    kiosk.signing.create_batch("B-2", "buffer-prep@4")
    kiosk.signing.sign(_weigh(kiosk), PW, "jane.op", code(floor, "jane.op", clock))  # jane's account remembered
    prepared = kiosk.signing.prepare("B-2", "line-clearance", "Performed", {"area_clear": "yes"})
    other = build_kiosk(config, kiosk.data_dir, clock, device_id="line-1", hasher=PasswordHasher(**CHEAP))
    try:
        other.auth.update_user(ACTOR, "jane.op", reason="left the company", status="deactivated")
    finally:
        other.close()
    with pytest.raises(SigningError, match="deactivated"):  # refused at the password check, not later
        kiosk.signing.sign(prepared, PW)
    assert [r.type for r in kiosk.store.iter_rows()].count("step.signed") == 1


def test_a_batch_signed_through_another_connection_is_not_signed_twice(kiosk, floor, clock, config):
    hasher = DuringArgon2(**CHEAP)
    kiosk.auth.hasher = hasher
    prepared = _weigh(kiosk)
    kiosk.signing.sign(_weigh(kiosk), PW, "jane.op", code(floor, "jane.op", clock))  # warms the batch document
    # The same step again, while another connection corrects the step (so the earlier signature is invalid
    # and the values changed): the in-transaction check must see the corrected batch, not the remembered one.
    other = build_kiosk(config, kiosk.data_dir, clock, device_id="line-1", hasher=PasswordHasher(**CHEAP))
    try:
        clock.advance(31)
        assert other.session.login("jane.op", PW, code(floor, "jane.op", clock)).ok
        hasher.hook = lambda: other.signing.correct("B-1", "line-clearance", {"area_clear": "no"},
                                                    "area was not clear after all")
        with pytest.raises(SigningError):
            kiosk.signing.sign(prepared, PW)
    finally:
        other.close()
    signed = [r for r in kiosk.store.iter_rows() if r.type == "step.signed"]
    assert len(signed) == 1


def test_a_failed_transaction_leaves_nothing_remembered(kiosk, floor, clock):
    def refuse(db, signed, reader=None):
        if signed.record.type == "step.signed":
            raise DirectoryConflict("refused by the test after the directory projector ran")

    kiosk.store.projectors.append(refuse)
    with pytest.raises(SigningError, match="refused by the test"):
        kiosk.signing.sign(_weigh(kiosk), PW, "jane.op", code(floor, "jane.op", clock))
    kiosk.store.projectors.remove(refuse)
    # The directory projector had already put the signed batch in the write connection's memory; the
    # rollback must take it out again, or this signature would be refused as "already signed".
    record = kiosk.signing.sign(_weigh(kiosk), PW, "jane.op", code(floor, "jane.op", clock))
    assert record["meaning"] == "Performed"
    assert [s["meaning"] for s in kiosk.signing.batch("B-1")["steps"]["line-clearance"]["signatures"]] == ["Performed"]


def test_a_directory_pull_replaces_what_the_write_connection_remembers(kiosk, floor, clock):
    from kiosk.domain.central import DirectoryEntry
    from storage.directory_pull import apply_directory

    hasher = DuringArgon2(**CHEAP)
    kiosk.auth.hasher = hasher
    kiosk.signing.sign(_weigh(kiosk), PW, "jane.op", code(floor, "jane.op", clock))  # warms jane's account
    kiosk.signing.witness(kiosk.signing.prepare("B-1", "line-clearance", "Verified", {"area_clear": "yes"},
                                                witness=True), "omar.op", PW, code(floor, "omar.op", clock))
    jane = dict(kiosk.directory.get("user", "jane.op"))
    jane["status"] = "deactivated"
    entries = [DirectoryEntry(1, "user", "jane.op", jane)]
    entries += [DirectoryEntry(1, kind, doc.get("batch_id") or doc["key"], doc)
                for kind in ("batch", "recipe") for doc in kiosk.directory.all(kind)]
    # A pull (central deactivated jane) lands after the sign-in reads, before the signature's transaction.
    prepared = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    head = kiosk.store.head().seq
    hasher.hook = lambda: apply_directory(kiosk.store, entries, publication_seq=1, version=1, own_upto=head)
    with pytest.raises(SessionError, match="no longer active"):
        kiosk.signing.sign(prepared, PW)
    assert [r.type for r in kiosk.store.iter_rows()].count("step.signed") == 1


def _difference(a, b, path="$") -> str | None:
    """Where ``a`` and ``b`` first differ in value or JSON type (``==`` lets 1 equal True and a tuple differ
    from a list only sometimes), or None. Only the path is reported: documents hold password hashes."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} against {type(b).__name__}"
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a.keys() ^ b.keys())} in one only"
        return next((d for k in a if (d := _difference(a[k], b[k], f"{path}.{k}")) is not None), None)
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items against {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _difference(x, y, f"{path}[{i}]"))), None)
    return None if a == b else f"{path}: values differ"


def _remembered_equal_rows(kiosk) -> int:
    from storage.doc_json import load_doc

    remembered = dict(kiosk.store._docs)
    with kiosk.store.read_engine().connect() as conn:
        for (kind, key), doc in remembered.items():
            row = conn.exec_driver_sql("SELECT doc FROM directory WHERE kind = ? AND key = ?", (kind, key)).first()
            stored = None if row is None else load_doc(row[0])
            difference = _difference(doc, stored)
            assert difference is None, f"{kind} {key}, remembered against stored: {difference}"
    return len(remembered)


def test_every_remembered_document_is_its_row_as_decoded(kiosk, floor, clock):
    """Documents a transaction writes are remembered as the objects the projectors made, not decoded again:
    each must equal, type for type, what decoding its stored row gives, for every kind of record."""
    from tests.services.test_signing import clear_line

    clear_line(kiosk, floor, clock)                                  # step.signed, witness.signed
    assert _remembered_equal_rows(kiosk)
    kiosk.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "wrong box ticked")  # + invalidations
    kiosk.signing.create_batch("B-2", "buffer-prep@4")
    clock.advance(31)
    kiosk.session.logout()
    for _ in range(5):  # failures, then a lockout
        clock.advance(31)
        kiosk.session.login("omar.op", "not the password", code(floor, "omar.op", clock))
    kiosk.auth.update_user(ACTOR, "quinn.qa", reason="new duties", roles=("qa", "operator"))
    kiosk.auth.update_user(ACTOR, "jane.op", reason="left", status="deactivated")
    kiosk.directory.get_many([("batch", "B-2"), ("user", "jane.op"), ("batch", "no such batch"),
                              ("batch_step", "B-1/line-clearance")])
    types = {r.type for r in kiosk.store.iter_rows()}
    assert {"step.signed", "witness.signed", "step.corrected", "signature.invalidated", "user.updated",
            "auth.failed", "account.suspended", "batch.created"} <= types, types
    assert _remembered_equal_rows(kiosk) >= 5


def test_the_remembered_documents_start_over_past_their_size_bound(kiosk, floor, clock, monkeypatch):
    """Decoded documents take several times the room of their JSON; a terminal's memory stays bounded."""
    from storage import doc_cache
    from tests.services.test_signing import clear_line

    clear_line(kiosk, floor, clock)
    assert len(kiosk.store._docs) > 3
    step = ("batch_step", "B-1/line-clearance")
    kiosk.directory.get_many([step])
    assert len(kiosk.store._docs) > 3  # within the bound: kept
    monkeypatch.setattr(doc_cache, "MAX_TEXT", kiosk.store._docs.text_size - 1)
    [doc] = kiosk.directory.get_many([step])
    assert list(kiosk.store._docs) == [step] and doc["signatures"]
    assert kiosk.store._docs.text_size > 0


def test_a_batch_replaced_under_another_recipe_is_read_as_it_now_is(kiosk, floor, clock):
    """The signing service reads a batch's documents in one go with the recipe it saw last time, and checks
    the batch's own document names that recipe: a batch replaced by a directory pull is read afresh."""
    import contextlib
    import sqlite3

    from storage.doc_json import dump_doc

    from tests.services.test_signing import clear_line

    clear_line(kiosk, floor, clock)
    kiosk.signing.sign(kiosk.signing.prepare("B-1", "weigh-salts", "Performed",
                                             {"balance_id": "BAL-7", "net_kg": "1.500"}), PW)
    before = kiosk.signing.batch("B-1")
    assert before["recipe_key"] == "buffer-prep@4" and "weigh-salts" in before["steps"]
    tablet = kiosk.directory.get("recipe", "tablet-compression@8")
    # Another connection (a directory pull, say) replaces the batch under another recipe.
    with contextlib.closing(sqlite3.connect(kiosk.data_dir / "kiosk.db", isolation_level=None)) as db:
        db.execute("UPDATE directory SET doc = ? WHERE kind = 'batch' AND key = 'B-1'",
                   (dump_doc({**{k: v for k, v in before.items() if k != "steps"},
                              "recipe_key": "tablet-compression@8", "recipe_hash": tablet["content_hash"]}),))
    after = kiosk.signing.batch("B-1")
    assert after["recipe_key"] == "tablet-compression@8"
    assert set(after["steps"]) == {"line-clearance"}  # the tablet recipe's steps only: no weigh-salts
    assert [s.title for s in kiosk.signing.steps("B-1")][0] == "Line clearance of the tablet press"
