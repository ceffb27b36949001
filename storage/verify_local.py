"""Walk every chain in a local store and prove it intact, in constant memory.

Tampering shows up as the first record that breaks a rule: bytes changed
(signature or canonical form), a record deleted/inserted/reordered (seq or
prev), or a tail cut off (an anchor — checkpoint, head marker or central
receipt — remembers a longer chain than the one stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import exc as sa_exc

from kiosk.domain.chain import Anchor, ChainSummary, ChainVerifier
from kiosk.domain.keys import PublicKey
from kiosk.domain.records import BrokenLink, RecordError, where_of
from storage.local_store import DB_FILE, iter_rows
from storage.sqlite import explain_operational_error, sqlite_engine


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


def verify_local_store(data_dir: Path, pinned: dict[str, PublicKey] | None = None) -> VerifyReport:
    path = Path(data_dir) / DB_FILE
    if not path.is_file():
        raise StoreMissing(f"{path}: no local store here (wrong --data-dir?)")
    engine = sqlite_engine(path, write=False)
    try:
        with engine.connect() as conn:
            chains = [r[0] for r in conn.exec_driver_sql(
                "SELECT chain FROM records GROUP BY chain UNION SELECT chain FROM chain_state ORDER BY 1"
            )]
            anchors: dict[str, list[Anchor]] = {}
            for chain, seq, hash_hex, source in conn.exec_driver_sql(
                "SELECT chain, seq, hash_hex, source FROM anchors ORDER BY chain, seq"
            ):
                label = {"checkpoint": "checkpoint anchor", "receipt": "central receipt"}.get(source, source)
                anchors.setdefault(chain, []).append(Anchor(seq, hash_hex, label))
            for chain, seq, hash_hex in conn.exec_driver_sql(
                "SELECT chain, head_seq, head_hash FROM chain_state"
            ):
                anchors.setdefault(chain, []).append(Anchor(seq, hash_hex, "the store's head marker"))
        summaries = []
        for chain in chains:
            verifier = ChainVerifier(chain, (pinned or {}).get(chain))
            wanted = {a.seq for a in anchors.get(chain, [])}
            seen: dict[int, str] = {}
            try:
                for row in iter_rows(engine, chain):
                    signed = verifier.feed(row.raw, row.sig, row.seq)
                    if signed.hash != row.hash:
                        raise BrokenLink(where_of(chain, row.seq), "stored hash column differs from the record bytes")
                    if row.seq in wanted:
                        seen[row.seq] = signed.hash_hex
                for anchor in anchors.get(chain, []):
                    verifier.check_anchor(anchor, seen.get(anchor.seq))
            except RecordError as err:
                return VerifyReport(str(path), tuple(summaries), err, chain)
            summaries.append(verifier.summary())
        return VerifyReport(str(path), tuple(summaries))
    except sa_exc.OperationalError as exc:
        raise explain_operational_error(exc, path) from None
    except sa_exc.DatabaseError as exc:
        raise explain_operational_error(exc, path) from None
    finally:
        engine.dispose()
