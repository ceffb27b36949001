"""What the central store says to kiosks, and how a kiosk checks it said it.

The central store signs with its own Ed25519 key, which a kiosk pins when it
first reaches the store (the admin compares the fingerprint on the device
status screen with `kiosk central init`'s). Two kinds of statement:

- a receipt, a detached signed statement "chain C is in the ledger up to seq
  N with hash H": the kiosk moves its outbox marker only on a receipt that
  verifies, so write access to the receipts table alone cannot make a kiosk
  believe unsynced records are safe;
- a directory publication, a record in the central chain naming a range of
  directory versions and the SHA-256 of exactly the documents in it: a kiosk
  applies pulled documents only when the digest and the signature check, so
  write access to the directory tables alone cannot plant a user.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from kiosk.domain.canonical import encode
from kiosk.domain.keys import PublicKey

CENTRAL_DEVICE = "central"
DIRECTORY_PUBLISHED = "directory.published"
# The shape of the directory documents a publication covers; a terminal applies only the format it knows.
# 2: a batch's steps are documents of their own (kiosk/domain/batches.py); 1 (unmarked): one document per batch.
DIRECTORY_FORMAT = 2
DEVICE_DECISIONS = {"device.approved": "approved", "device.rejected": "rejected", "device.revoked": "revoked"}


class CentralTrustError(Exception):
    """The central store's statement does not check against the pinned key; nothing was applied."""


@dataclass(frozen=True)
class Receipt:
    chain: str
    upto: int
    hash: str
    central_ts: str
    kid: str

    def statement(self) -> bytes:
        return encode({"type": "sync.receipt", "chain": self.chain, "upto": self.upto, "hash": self.hash,
                       "central_ts": self.central_ts, "kid": self.kid})

    def check(self, key: PublicKey, sig: bytes | None) -> None:
        if self.kid != key.kid:
            raise CentralTrustError(f"the receipt for {self.chain} #{self.upto} is signed by key {self.kid}, "
                                    f"not the pinned central key {key.kid}")
        if not sig or not key.verify_statement(self.statement(), sig):
            raise CentralTrustError(f"the receipt for {self.chain} #{self.upto} has no valid central signature")


@dataclass(frozen=True)
class DirectoryEntry:
    version: int
    kind: str
    key: str
    doc: Mapping[str, Any]


def directory_digest(entries: Iterable[DirectoryEntry]) -> str:
    """SHA-256 over the canonical form of each entry, in the order given (version order)."""
    digest = DirectoryDigest()
    for e in entries:
        digest.add(e)
    return digest.hexdigest()


class DirectoryDigest:
    """directory_digest an entry at a time, so a terminal checks a publication while it streams it in."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, e: DirectoryEntry) -> None:
        self._h.update(encode({"v": e.version, "kind": e.kind, "key": e.key, "doc": e.doc}))
        self._h.update(b"\n")

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def is_central_chain(chain: str) -> bool:
    return chain.rpartition(":")[0] == CENTRAL_DEVICE
