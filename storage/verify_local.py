"""Walk every chain in a local store and prove it intact, in constant memory.

Tampering shows up as the first record that breaks a rule: bytes changed
(signature or canonical form), a record deleted/inserted/reordered (seq or
prev), or a tail cut off (an anchor — checkpoint, head marker or central
receipt — remembers a longer chain than the one stored).

Signature checks dominate, so a long chain is cut into segments verified in
several processes; the segments are stitched back in order (boundary links,
checkpoint Merkle roots, anchors), so the result and the first error named
are the same as a sequential walk.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc as sa_exc

from kiosk.domain.chain import Anchor, ChainSummary, ChainVerifier, SegmentStitcher, genesis_key
from kiosk.domain.keys import PublicKey
from kiosk.domain.records import BrokenLink, RecordError, parse_raw, where_of
from storage.local_store import DB_FILE, iter_row_batches, iter_rows
from storage.sqlite import explain_operational_error, sqlite_engine

SEGMENT = 20_000          # records per parallel task
PARALLEL_FROM = 40_000    # shorter chains are verified in this process


@dataclass(frozen=True)
class VerifyReport:
    path: str
    chains: tuple[ChainSummary, ...] = ()
    error: RecordError | None = None
    error_chain: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)


class StoreMissing(Exception):
    pass


def _load_anchors(conn) -> dict[str, list[Anchor]]:
    anchors: dict[str, list[Anchor]] = {}
    for chain, seq, hash_hex, source in conn.exec_driver_sql(
        "SELECT chain, seq, hash_hex, source FROM anchors ORDER BY chain, seq"
    ):
        label = {"checkpoint": "checkpoint anchor", "receipt": "central receipt"}.get(source, source)
        anchors.setdefault(chain, []).append(Anchor(seq, hash_hex, label))
    for chain, seq, hash_hex in conn.exec_driver_sql("SELECT chain, head_seq, head_hash FROM chain_state"):
        anchors.setdefault(chain, []).append(Anchor(seq, hash_hex, "the store's head marker"))
    return anchors


def _verify_segment(db_path: str, chain: str, lo: int, hi: int, pinned: bytes | None):
    """Worker: verify seq lo..hi. Returns stitching data, or the first error (pickled as plain data)."""
    engine = sqlite_engine(Path(db_path), write=False)
    try:
        key = PublicKey(pinned) if pinned else None
        if lo > 1 and key is None:
            first = next(iter_rows(engine, chain, 0, 1), None)
            if first is not None:
                record, _ = parse_raw(first.raw)
                key = genesis_key(dict(record.body), where_of(chain, 1))
        verifier = ChainVerifier(chain, key, start_seq=lo, segment=True)
        for rows in iter_row_batches(engine, chain, lo - 1, hi):
            verifier.verify_signatures_first([(row.raw, row.sig) for row in rows])
            for row in rows:
                verifier.feed(row.raw, row.sig, row.seq, row.hash, {"type": row.type, "ts": row.ts})
        return ("ok", verifier.first_prev, bytes(verifier.hashes), verifier.pending_checkpoints,
                verifier.first_ts, verifier.last_ts, verifier.next_seq - 1)
    except RecordError as err:
        return ("error", type(err).__name__, err.where, err.detail)
    finally:
        engine.dispose()


def _rebuild_error(name: str, where: str, detail: str) -> RecordError:
    import kiosk.domain.chain as chain_mod
    import kiosk.domain.records as rec_mod

    cls = getattr(rec_mod, name, None) or getattr(chain_mod, name, None) or RecordError
    return cls(where, detail)


def _verify_chain(db: Path, chain: str, count: int, anchors: list[Anchor], pinned: PublicKey | None,
                  pool: ProcessPoolExecutor | None) -> ChainSummary:
    wanted = {a.seq for a in anchors}
    seen: dict[int, str] = {}
    stitcher = SegmentStitcher(chain)
    bounds = [(lo, min(lo + SEGMENT - 1, count)) for lo in range(1, count + 1, SEGMENT)] or [(1, 0)]
    key_raw = pinned.raw if pinned else None
    if pool is None:
        results = (_verify_segment(str(db), chain, lo, hi, key_raw) for lo, hi in bounds)
    else:
        results = pool.map(_verify_segment, [str(db)] * len(bounds), [chain] * len(bounds),
                           [b[0] for b in bounds], [b[1] for b in bounds], [key_raw] * len(bounds))
    for (lo, hi), result in zip(bounds, results):
        if result[0] == "error":
            raise _rebuild_error(*result[1:])
        _, first_prev, hashes, cps, first_ts, last_ts, last_seq = result
        stitcher.add(lo, first_prev, hashes, cps, first_ts, last_ts)
        for seq in wanted:
            if lo <= seq <= lo - 1 + len(hashes) // 32:
                seen[seq] = hashes[(seq - lo) * 32:(seq - lo + 1) * 32].hex()
        if last_seq < hi:  # the chain ends early inside this segment
            break
    # Records stored beyond the expected count (e.g. the head marker was rolled back).
    extra = next(iter_rows_after(db, chain, stitcher.records), None)
    if extra is not None:
        raise BrokenLink(where_of(chain, extra), "record stored beyond the chain's head marker")
    verifier = ChainVerifier(chain)
    verifier.next_seq = stitcher.records + 1
    for anchor in anchors:
        verifier.check_anchor(anchor, seen.get(anchor.seq))
    return stitcher.summary()


def iter_rows_after(db: Path, chain: str, seq: int):
    engine = sqlite_engine(db, write=False)
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT seq FROM records WHERE chain = ? AND seq > ? ORDER BY seq LIMIT 1",
                                       (chain, seq)).first()
        if row is not None:
            yield row[0]
    finally:
        engine.dispose()


def verify_local_store(data_dir: Path, pinned: dict[str, PublicKey] | None = None,
                       workers: int | None = None) -> VerifyReport:
    path = Path(data_dir) / DB_FILE
    if not path.is_file():
        raise StoreMissing(f"{path}: no local store here (wrong --data-dir?)")
    engine = sqlite_engine(path, write=False)
    try:
        with engine.connect() as conn:
            counts = dict(conn.exec_driver_sql(
                "SELECT chain, max(seq) FROM records GROUP BY chain "
                "UNION SELECT chain, 0 FROM chain_state WHERE chain NOT IN (SELECT chain FROM records) ORDER BY 1"
            ).all())
            anchors = _load_anchors(conn)
    except sa_exc.DatabaseError as exc:
        raise explain_operational_error(exc, path) from None
    finally:
        engine.dispose()
    big = any(n >= PARALLEL_FROM for n in counts.values())
    workers = workers if workers is not None else (os.cpu_count() or 1)
    pool = ProcessPoolExecutor(max_workers=workers) if big and workers > 1 else None
    summaries: list[ChainSummary] = []
    try:
        for chain, count in counts.items():
            try:
                summaries.append(_verify_chain(path, chain, count, anchors.get(chain, []),
                                               (pinned or {}).get(chain), pool if count >= PARALLEL_FROM else None))
            except RecordError as err:
                return VerifyReport(str(path), tuple(summaries), err, chain)
    except sa_exc.DatabaseError as exc:
        raise explain_operational_error(exc, path) from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return VerifyReport(str(path), tuple(summaries))
