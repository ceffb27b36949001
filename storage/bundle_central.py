"""The central ledger as a bundle source: every device chain, and the central store's own chain, with the
central store's anchors and the receipt it signed at each device chain's head.

The central chain (``central:1``) is part of the site's record: who approved,
rejected or revoked each terminal and why, the alerts the central store
raised, and each directory publication (a rebase after a restore names its
admin and reason). An inspector holding only the bundle reads and verifies
it like any terminal's chain; its key is the one it opened with.
"""

from __future__ import annotations

from typing import Any, Iterator

from sqlalchemy import text

from kiosk.domain.exports import BundleDevice
from kiosk.domain.keys import b64url
from storage.central import CentralStore

BATCH = 1000


class CentralBundleSource:
    def __init__(self, central: CentralStore) -> None:
        self.central = central

    def close(self) -> None:
        self.central.close()

    def devices(self) -> list[BundleDevice]:
        with self.central.engine.connect() as conn:
            central = [BundleDevice(d, int(e), k, p, "central") for d, e, k, p in conn.execute(text(
                "SELECT device_id, epoch, kid, public_key FROM chain_heads WHERE status = 'central' AND seq > 0"))]
        return central + [BundleDevice(d["device_id"], int(d["epoch"]), d["kid"], d["public_key"], d["status"])
                          for d in self.central.devices() if d["seq"] > 0]

    def record_lines(self, device: BundleDevice) -> Iterator[str]:
        chain, last = f"{device.device_id}:{device.epoch}", 0
        while True:
            with self.central.engine.connect() as conn:
                rows = conn.execute(text("SELECT seq, raw, sig FROM ledger WHERE chain = :c AND seq > :s "
                                         "ORDER BY seq LIMIT :n"), {"c": chain, "s": last, "n": BATCH}).all()
            for seq, raw, sig in rows:
                yield '{"r":' + bytes(raw).decode("utf-8") + ',"s":"' + b64url(bytes(sig)) + '"}'
            if len(rows) < BATCH:
                return
            last = rows[-1][0]

    def anchors(self) -> dict[str, Any]:
        chains: dict[str, Any] = {}
        with self.central.engine.connect() as conn:
            for chain, seq, digest, status in conn.execute(text("SELECT chain, seq, hash, status FROM chain_heads")):
                cps = [{"seq": s, "hash": bytes(h).hex()} for s, h in conn.execute(
                    text("SELECT seq, hash FROM ledger WHERE chain = :c AND type = 'checkpoint' ORDER BY seq"),
                    {"c": chain})]
                chains[chain] = {"seq": seq, "hash": digest, "status": status, "checkpoints": cps}
        for chain, anchor in chains.items():
            if anchor["status"] != "central" and anchor["seq"] > 0:
                anchor["receipt"] = self._receipt(chain)
        return {"source": "central store ledger heads", "chains": chains}

    def _receipt(self, chain: str) -> dict[str, Any] | None:
        """The last receipt the central store signed for ``chain``: anchors.json is not signed, but this
        statement is, so the verifier holds the chain's head to it with the central key alone."""
        found = self.central.receipt(chain)
        if found is None or found[1] is None:
            return None
        receipt, sig = found
        return {"upto": receipt.upto, "hash": receipt.hash, "central_ts": receipt.central_ts, "kid": receipt.kid,
                "sig": b64url(sig)}
