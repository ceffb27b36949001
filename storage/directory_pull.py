"""Apply a verified central directory to the kiosk, atomically.

The kiosk's working directory is the central base (everything the central
store derived from all terminals, as far as it has ingested them) plus this
kiosk's own records the central store has not seen yet, replayed on top. So a
suspension made on another terminal arrives with the base, and nothing done
here offline is forgotten when a pull lands. It all happens in one write
transaction, serialised with appends: a reader sees the old or the new
directory, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kiosk.domain.central import DirectoryEntry
from kiosk.domain.directory import DirectoryConflict
from kiosk.domain.records import open_signed
from storage.doc_json import dump_doc


@dataclass(frozen=True)
class PullState:
    publication_seq: int
    version: int
    own_upto: int
    publication_hash: str = ""  # the publication applied last ('' before the first pull, and before l0007)
    publication_ts: str = ""  # its time (the central clock)


@dataclass(frozen=True)
class PullResult:
    documents: int
    replayed: int
    conflicts: tuple[str, ...]


def pull_state(store) -> PullState:
    with store.read_engine().connect() as conn:
        row = conn.exec_driver_sql("SELECT publication_seq, version, own_upto, publication_hash, publication_ts "
                                   "FROM pull_state WHERE id = 1").first()
    return PullState(*row) if row else PullState(0, 0, 0)


def apply_directory(store, entries: Iterable[DirectoryEntry], *, publication_seq: int, version: int,
                    own_upto: int, publication_hash: str = "", publication_ts: str = "",
                    rebase: bool = False) -> PullResult:
    """Upsert the verified entries into the base, then make the working directory base + own tail again.

    ``rebase``: the entries are a rebase snapshot (the central store was restored from a backup), which
    replaces the whole base: a document the central store no longer has leaves it too.

    Only the documents that can differ from the new base are reset to it:
    those the entries changed, and those this terminal's own records wrote
    (chain not 'central'; the tail replayed at the last pull included). Every
    other row was copied from the base and the base has not changed it. Then
    the own tail is replayed on top, as before. Rewriting every document
    instead cost ~1 s at 150,000 documents (every terminal's batches and
    alerts) on each pull, with the write lock held and signing waiting.
    """
    conflicts: list[str] = []
    replayed = 0
    with store.side_transaction(rewrites_directory=True) as db:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS pull_touched (kind TEXT, key TEXT, PRIMARY KEY (kind, key))")
        db.execute("DELETE FROM pull_touched")
        count = 0
        if rebase:
            db.execute("INSERT OR IGNORE INTO pull_touched SELECT kind, key FROM directory WHERE chain = 'central'")
            db.execute("DELETE FROM central_directory")
        for e in entries:
            db.execute("INSERT INTO central_directory (kind, key, doc, version) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, version = excluded.version",
                       (e.kind, e.key, dump_doc(dict(e.doc)), e.version))
            db.execute("INSERT OR IGNORE INTO pull_touched (kind, key) VALUES (?, ?)", (e.kind, e.key))
            count += 1
        db.execute("INSERT OR IGNORE INTO pull_touched SELECT kind, key FROM directory WHERE chain <> 'central'")
        db.execute("INSERT OR IGNORE INTO pull_touched SELECT kind, key FROM central_directory c WHERE NOT EXISTS "
                   "(SELECT 1 FROM directory d WHERE d.kind = c.kind AND d.key = c.key)")  # never, by construction
        db.execute("DELETE FROM directory WHERE (kind, key) IN (SELECT kind, key FROM pull_touched)")
        db.execute("INSERT INTO directory (kind, key, doc, chain, seq) SELECT c.kind, c.key, c.doc, 'central', "
                   "c.version FROM central_directory c JOIN pull_touched t ON c.kind = t.kind AND c.key = t.key")
        db.execute("DELETE FROM pull_touched")
        key = store.identity.key.public
        tail = db.cursor()
        tail.execute("SELECT raw, sig FROM records WHERE chain = ? AND seq > ? ORDER BY seq", (store.chain, own_upto))
        while batch := tail.fetchmany(500):
            for raw, sig in batch:
                signed = open_signed(bytes(raw), bytes(sig), key)
                db.execute("SAVEPOINT replay")
                try:
                    for project in store.projectors:
                        project(db, signed)
                except DirectoryConflict as exc:
                    # Shown to admins centrally when the record arrives there; the record itself is kept.
                    db.execute("ROLLBACK TO SAVEPOINT replay")
                    conflicts.append(f"{signed.record.type} #{signed.record.seq}: {exc}")
                db.execute("RELEASE SAVEPOINT replay")
                replayed += 1
        db.execute("UPDATE pull_state SET publication_seq = ?, version = ?, own_upto = ?, publication_hash = ?, "
                   "publication_ts = ? WHERE id = 1",
                   (publication_seq, version, own_upto, publication_hash, publication_ts))
    store.directory_changed()
    return PullResult(count, replayed, tuple(conflicts))


class LocalPuller:
    """The SyncService's port onto this kiosk's store."""

    def __init__(self, store) -> None:
        self.store = store

    def state(self) -> PullState:
        return pull_state(self.store)

    def apply(self, entries, *, publication_seq: int, version: int, own_upto: int, publication_hash: str = "",
              publication_ts: str = "", rebase: bool = False) -> PullResult:
        return apply_directory(self.store, entries, publication_seq=publication_seq, version=version,
                               own_upto=own_upto, publication_hash=publication_hash, publication_ts=publication_ts,
                               rebase=rebase)
