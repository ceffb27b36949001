"""RFC 9162 Merkle tree hash over a chain, computed in O(log n) memory.

Checkpoints carry the root over every record hash so far; keeping only the
compact frontier means verify and the store never hold a whole chain.
"""

from __future__ import annotations

import hashlib


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleFrontier:
    """Appends leaves one at a time; root() equals RFC 9162 MTH of all leaves."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), heights strictly decreasing
        self.size = 0

    def add(self, data: bytes) -> None:
        height, digest = 0, leaf_hash(data)
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            digest = node_hash(left, digest)
            height += 1
        self._stack.append((height, digest))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = node_hash(left, digest)
        return digest

    def copy(self) -> "MerkleFrontier":
        twin = MerkleFrontier()
        twin._stack = list(self._stack)
        twin.size = self.size
        return twin

    def state(self) -> list[list]:
        """A JSON-able snapshot, so a store can resume without replaying the chain."""
        return [[h, d.hex()] for h, d in self._stack]

    @classmethod
    def from_state(cls, size: int, state: list[list]) -> "MerkleFrontier":
        frontier = cls()
        frontier._stack = [(int(h), bytes.fromhex(d)) for h, d in state]
        frontier.size = size
        return frontier


def merkle_root(leaves: list[bytes]) -> bytes:
    """Reference recursive MTH (RFC 9162 §2.1.1), used to test the frontier."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))
