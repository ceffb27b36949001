"""A pull resets only the documents that can differ from the new central base, then replays the terminal's own
records the central store has not taken in yet: the working directory must be exactly what rebuilding it whole
from the base and that tail gives. Real SQLite and PostgreSQL, FakeClock."""

import pytest

from storage.directory_pull import apply_directory, pull_state
from tests.storage.test_central_trust import PASSWORD, cycle
from tests.storage.test_step_documents import two_lines_with_batches


def working(kiosk):
    """Every row of the working directory, origin included."""
    with kiosk.store.side_transaction() as db:
        return sorted(db.execute("SELECT kind, key, doc, chain, seq FROM directory").fetchall())


def rebuilt_whole(kiosk):
    """The working directory made again from nothing: the base, then the tail (what every pull did before)."""
    state = pull_state(kiosk.store)
    with kiosk.store.side_transaction(rewrites_directory=True) as db:
        db.execute("DELETE FROM directory")
    apply_directory(kiosk.store, [], publication_seq=state.publication_seq, version=state.version,
                    own_upto=state.own_upto)
    return working(kiosk)


@pytest.mark.req("DI-ALCOA")
def test_a_pull_gives_the_directory_a_whole_rebuild_gives(central, tmp_path, clock):
    a, sync_a, b, sync_b = two_lines_with_batches(central, tmp_path, clock)
    # Line B works on a batch of line A's; line A corrects another. Line B's records are pushed but not yet
    # taken in when it pulls line A's: its pull replays them over the new base.
    b.auth.accept_first_use(b.auth.user("ana.op"))
    assert b.session.login("ana.op", PASSWORD, None).ok
    b.signing.sign(b.signing.prepare("B-2", "line-clearance", "Performed", {"area_clear": "no"}), PASSWORD, "ana.op")
    b.signing.create_batch("B-3", "buffer-prep@4")
    assert a.session.login("ana.op", PASSWORD, None).ok
    a.signing.correct("B-1", "line-clearance", {"area_clear": "no"}, "a pallet was left")
    sync_a.sync_once()
    central.ingest_all()
    sync_b.sync_once()  # pushes line B's records, pulls line A's correction
    assert pull_state(b.store).own_upto < b.store.head().seq  # a tail was replayed
    pulled = working(b)
    shown = {s.step_id: s.status for s in b.signing.steps("B-1")}
    assert shown["line-clearance"] == "needs_resign"  # line A's correction arrived
    assert b.signing.batch("B-3")["batch_id"] == "B-3"  # line B's own batch, from its tail
    assert pulled == rebuilt_whole(b)
    cycle(central, sync_a, sync_b)  # line B's records taken in: the next pull resets them to the base
    assert pull_state(b.store).own_upto == b.store.head().seq
    assert working(b) == rebuilt_whole(b)
    # A record of line B's that the central store kept but did not take into its directory (a conflict there)
    # leaves a document only line B wrote, in no publication: the next pull drops it, as a whole rebuild does.
    with b.store.side_transaction(rewrites_directory=True) as db:
        db.execute("INSERT INTO directory (kind, key, doc, chain, seq) VALUES ('batch', 'B-ONLY-HERE', '{}', ?, ?)",
                   (b.store.chain, b.store.head().seq))
    a.signing.create_batch("B-4", "buffer-prep@4")  # something for line B to pull
    cycle(central, sync_a, sync_b)
    assert b.directory.get("batch", "B-4") is not None and b.directory.get("batch", "B-ONLY-HERE") is None
    assert working(b) == rebuilt_whole(b)
    a.close(), b.close()
