"""Re-verify every chain in the central ledger, as an inspector would, without trusting ingest.

Ingest checked each record once on its way in; this check proves the ledger
is still what ingest wrote: direct SQL on the central database (changed
bytes, a deleted or reordered row, a cut tail, a replaced device key, a
record re-signed with another device's key) shows up as the first record
of that chain that breaks a rule.

It reuses the local verifier's approach (kiosk.domain.chain): each chain, and
each long chain in segments, is verified in a worker process streaming rows
in batches; segments are stitched in order (boundary links, checkpoint
Merkle roots) and then held against the central store's own anchors: the
chain head (seq, hash) and every receipt handed to a kiosk.

Ingest may run meanwhile. The coordinator reads heads, receipts and the
ledger's extent in one snapshot; the workers read only records up to that
head, which legitimate ingest never changes, so a live store verifies.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from kiosk.domain.chain import Anchor, ChainVerifier, SegmentStitcher, TruncatedChain
from kiosk.domain.keys import PublicKey, kid_of, unb64url
from kiosk.domain.records import BrokenLink, RecordError, UnknownKey, where_of
from storage.central import sqlite_file
from storage.sqlite import sqlite_engine

SEGMENT = 20_000   # records per parallel task
READ_BATCH = 1000  # rows per query while streaming a segment


@dataclass(frozen=True)
class ChainCheck:
    """The verdict on one device chain: OK, or the first record that breaks a rule."""

    chain: str
    status: str
    records: int
    checkpoints: int = 0
    error: RecordError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CentralVerifyReport:
    url: str
    chains: tuple[ChainCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chains)

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)


@dataclass(frozen=True)
class _Head:
    chain: str
    status: str
    kid: str
    public_key: str
    seq: int
    hash_hex: str


# -- worker side ------------------------------------------------------------
_ENGINES: dict[str, Engine] = {}


def read_engine(url: str) -> Engine:
    """A read-only engine (SQLite: no write lock, so verify never blocks ingest); one per process."""
    engine = _ENGINES.get(url)
    if engine is None:
        path = sqlite_file(url)
        if path is not None:
            engine = sqlite_engine(path, write=False, create=False)
        else:
            engine = create_engine(url, poolclass=NullPool)
        _ENGINES[url] = engine
    return engine


def _batches(engine: Engine, chain: str, lo: int, hi: int) -> Iterator[list]:
    """Ledger rows lo..hi in seq order, as the batches they are read in."""
    last = lo - 1
    while True:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT seq, hash, raw, sig, id, type, ts, kid FROM ledger "
                "WHERE chain = :c AND seq > :last AND seq <= :hi ORDER BY seq LIMIT :n"),
                {"c": chain, "last": last, "hi": hi, "n": READ_BATCH}).all()
        if rows:
            yield rows
        if len(rows) < READ_BATCH:
            return
        last = rows[-1][0]


def _as_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")  # a BLOB rewritten as TEXT must still be checked


def verify_segment(url: str, chain: str, lo: int, hi: int, key_raw: bytes) -> tuple:
    """Verify ledger rows lo..hi of one chain against the enrolled key.

    Returns plain data (it crosses a process boundary): what the stitcher
    needs, plus the first error if one was found; the records before the
    error are returned too, so the coordinator can tell whether an earlier
    boundary or checkpoint failed first.
    """
    verifier = ChainVerifier(chain, PublicKey(key_raw), start_seq=lo, segment=True)
    error = None
    try:
        for rows in _batches(read_engine(url), chain, lo, hi):
            verifier.verify_signatures_first([(_as_bytes(row[2]), _as_bytes(row[3])) for row in rows])
            for seq, digest, raw, sig, rid, rtype, ts, kid in rows:
                # Raises before keeping anything of a bad record: what is handed back is the records before it.
                verifier.feed(_as_bytes(raw), _as_bytes(sig), seq, _as_bytes(digest),
                              {"id": rid, "type": rtype, "ts": ts, "kid": kid})
    except RecordError as err:
        error = (type(err).__name__, err.where, err.detail)
    return (verifier.first_prev, bytes(verifier.hashes), verifier.pending_checkpoints,
            verifier.first_ts, verifier.last_ts, error)


def _rebuild_error(name: str, where: str, detail: str) -> RecordError:
    import kiosk.domain.chain as chain_mod
    import kiosk.domain.records as rec_mod

    cls = getattr(rec_mod, name, None) or getattr(chain_mod, name, None) or RecordError
    return cls(where, detail)


# -- coordinator ----------------------------------------------------------------
def _heads(conn: Connection) -> list[_Head]:
    rows = conn.execute(text("SELECT chain, status, kid, public_key, seq, hash FROM chain_heads ORDER BY chain")).all()
    return [_Head(r[0], r[1], r[2], r[3], int(r[4]), r[5]) for r in rows]


def _extents(conn: Connection) -> dict[str, tuple[int, int]]:
    """(highest seq, row count) per chain in the ledger, including chains without a head."""
    return {r[0]: (int(r[1]), int(r[2])) for r in conn.execute(text(
        "SELECT chain, max(seq), count(*) FROM ledger GROUP BY chain"))}


def _anchors(conn: Connection, head: _Head) -> list[Anchor]:
    anchors = [Anchor(head.seq, head.hash_hex, "chain_heads")] if head.seq > 0 else []
    for upto, digest in conn.execute(text("SELECT upto, hash FROM receipts WHERE chain = :c ORDER BY upto"),
                                     {"c": head.chain}):
        anchors.append(Anchor(int(upto), digest, f"the receipt for #{upto} given to the kiosk"))
    return anchors


def _enrolled_key(head: _Head) -> PublicKey:
    where = where_of(head.chain, 1)
    try:
        key = PublicKey(unb64url(head.public_key))
    except (ValueError, TypeError):
        raise UnknownKey(where, "the key enrolled in chain_heads is not a valid Ed25519 public key") from None
    if kid_of(key.raw) != head.kid:
        raise UnknownKey(where, f"chain_heads names key {head.kid}, but its public key is {kid_of(key.raw)}")
    return key


def _snapshot(engine: Engine) -> Connection:
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    conn.begin()
    return conn


def verify_central(url: str, workers: int | None = None, *,
                   on_chain: Callable[[ChainCheck], None] | None = None) -> CentralVerifyReport:
    """Verify every chain; ``on_chain`` hears each verdict as soon as it is known (for progress output)."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    engine = read_engine(url)
    snapshot = _snapshot(engine)
    pool: Executor | None = None
    results: list[ChainCheck] = []
    try:
        heads = _heads(snapshot)
        extents = _extents(snapshot)
        tasks: list[tuple[_Head, int, int]] = []
        keys: dict[str, PublicKey | RecordError] = {}
        for head in heads:
            try:
                keys[head.chain] = _enrolled_key(head)
            except RecordError as err:
                keys[head.chain] = err
                continue
            for lo in range(1, head.seq + 1, SEGMENT):
                tasks.append((head, lo, min(lo + SEGMENT - 1, head.seq)))
        if workers > 1 and len(tasks) > 1:
            # forkserver: workers never inherit the coordinator's open database connection.
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("forkserver"))
            outcomes = pool.map(verify_segment, [url] * len(tasks), [t[0].chain for t in tasks],
                                [t[1] for t in tasks], [t[2] for t in tasks],
                                [keys[t[0].chain].raw for t in tasks])  # type: ignore[union-attr]
        else:
            outcomes = (verify_segment(url, h.chain, lo, hi, keys[h.chain].raw)  # type: ignore[union-attr]
                        for h, lo, hi in tasks)
        per_chain: dict[str, list[tuple[int, int]]] = {}
        for head, lo, hi in tasks:
            per_chain.setdefault(head.chain, []).append((lo, hi))
        outcome_iter = iter(outcomes)
        for head in heads:
            segments = [(lo, hi, next(outcome_iter)) for lo, hi in per_chain.get(head.chain, [])]
            check = _judge(snapshot, head, keys[head.chain], segments, extents.get(head.chain))
            results.append(check)
            if on_chain:
                on_chain(check)
        for chain in sorted(set(extents) - {h.chain for h in heads}):
            check = ChainCheck(chain, "unknown", extents[chain][1], error=UnknownKey(
                where_of(chain, 1), "the ledger holds records of a chain that has no head (no enrolled key)"))
            results.append(check)
            if on_chain:
                on_chain(check)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        snapshot.rollback()
        snapshot.close()
    return CentralVerifyReport(url, tuple(results))


def _judge(conn: Connection, head: _Head, key: PublicKey | RecordError, segments: list[tuple[int, int, tuple]],
           extent: tuple[int, int] | None) -> ChainCheck:
    stitcher = SegmentStitcher(head.chain)
    try:
        if isinstance(key, RecordError):
            raise key
        anchors = _anchors(conn, head)
        wanted = {a.seq for a in anchors}
        seen: dict[int, str] = {}
        for lo, _hi, (first_prev, hashes, cps, first_ts, last_ts, error) in segments:
            stitcher.add(lo, first_prev, hashes, cps, first_ts, last_ts)
            for seq in wanted:
                if lo <= seq < lo + len(hashes) // 32:
                    seen[seq] = hashes[(seq - lo) * 32:(seq - lo + 1) * 32].hex()
            if error is not None:
                raise _rebuild_error(*error)
            # A segment that ends early is a cut tail (the anchors below name it) or a hole that the
            # next non-empty segment's boundary check names.
        top = extent[0] if extent else 0
        if top > head.seq:
            raise BrokenLink(where_of(head.chain, head.seq + 1),
                             f"stored beyond the chain head #{head.seq} that chain_heads records")
        verifier = ChainVerifier(head.chain)
        verifier.next_seq = stitcher.records + 1
        for anchor in sorted(anchors, key=lambda a: a.seq):
            verifier.check_anchor(anchor, seen.get(anchor.seq))
    except RecordError as err:
        return ChainCheck(head.chain, head.status, stitcher.records, stitcher.checkpoints, err)
    return ChainCheck(head.chain, head.status, stitcher.records, stitcher.checkpoints)


__all__ = ["CentralVerifyReport", "ChainCheck", "TruncatedChain", "verify_central"]
