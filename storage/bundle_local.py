"""A local store as a bundle source: what a single kiosk can hand an inspector on its own."""

from __future__ import annotations

from typing import Any, Iterator

from kiosk.domain.chain import CHAIN_OPENED, CHECKPOINT
from kiosk.domain.keys import b64url
from kiosk.domain.records import parse_raw, split_chain
from kiosk.domain.exports import BundleDevice
from storage.local_store import iter_rows, read_head
from storage.sqlite import sqlite_engine


class LocalBundleSource:
    def __init__(self, db_path) -> None:
        self.engine = sqlite_engine(db_path, write=False)

    def _chains(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT chain FROM chain_state ORDER BY chain")]

    def devices(self) -> list[BundleDevice]:
        out = []
        for chain in self._chains():
            device_id, epoch = split_chain(chain)
            with self.engine.connect() as conn:
                row = conn.exec_driver_sql(
                    "SELECT raw FROM records WHERE chain = ? AND seq = 1 AND type = ?", (chain, CHAIN_OPENED)
                ).first()
            if row is None:
                continue
            record, _ = parse_raw(bytes(row[0]))
            out.append(BundleDevice(device_id, epoch, record.kid, record.body["public_key"], "local",
                                    registration_record=record.id))
        return out

    def record_lines(self, device: BundleDevice) -> Iterator[str]:
        for row in iter_rows(self.engine, f"{device.device_id}:{device.epoch}"):
            yield '{"r":' + row.raw.decode("utf-8") + ',"s":"' + b64url(row.sig) + '"}'

    def anchors(self) -> dict[str, Any]:
        chains: dict[str, Any] = {}
        for chain in self._chains():
            head = read_head(self.engine, chain)
            with self.engine.connect() as conn:
                cps = [{"seq": s, "hash": h} for s, h in conn.exec_driver_sql(
                    "SELECT seq, hash FROM records WHERE chain = ? AND type = ? ORDER BY seq", (chain, CHECKPOINT))]
            chains[chain] = {"seq": head.seq, "hash": head.hash_hex, "checkpoints": [
                {"seq": c["seq"], "hash": bytes(c["hash"]).hex()} for c in cps]}
        return {"source": "local store (not yet anchored centrally)", "chains": chains}

    def close(self) -> None:
        self.engine.dispose()
