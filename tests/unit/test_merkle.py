import hashlib

import pytest

from kiosk.domain.merkle import MerkleFrontier, merkle_root


@pytest.mark.req("P11-10c")
def test_frontier_equals_rfc9162_reference_for_every_size():
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(300)]
    frontier = MerkleFrontier()
    assert frontier.root() == merkle_root([])
    for n, leaf in enumerate(leaves, start=1):
        frontier.add(leaf)
        assert frontier.root() == merkle_root(leaves[:n]), n


def test_frontier_state_round_trips():
    frontier = MerkleFrontier()
    for i in range(37):
        frontier.add(bytes([i]) * 32)
    again = MerkleFrontier.from_state(frontier.size, frontier.state())
    again.add(b"x" * 32)
    frontier.add(b"x" * 32)
    assert again.root() == frontier.root()
