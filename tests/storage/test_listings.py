"""What piles up for years (batches, open alerts) is listed a page at a time through SQLite indexes; the order
must be the one Python would give.

Newest first, then by id: the index sorts the JSON's timestamp text and the
ids' UTF-8 bytes, Python sorts strings by code point. They agree for every id a
terminal accepts, ties of time included, and a batch's position (where G takes
the worklist) is the one its page shows it at.
"""

from __future__ import annotations

import itertools
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kiosk.demo import create_demo
from kiosk.domain.audit import actor, target
from kiosk.domain.passwords import PasswordHasher

# Ids as a terminal stores them: NFC (create_batch normalises what is typed).
_IDS = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd"), whitelist_characters="-_./"),
               min_size=1, max_size=10).map(lambda text: unicodedata.normalize("NFC", text))
_SEQ = itertools.count()


@pytest.fixture(scope="module")
def floor(tmp_path_factory):
    from kiosk.domain.clock import FakeClock

    clock = FakeClock()
    kiosk, _users = create_demo(tmp_path_factory.mktemp("order") / "demo", clock,
                                hasher=PasswordHasher(time_cost=1, memory_kib=1024, parallelism=1))
    yield kiosk, clock
    kiosk.close()


def _start(kiosk, batch_id: str) -> None:
    recipe = kiosk.signing.recipe("buffer-prep@4")
    kiosk.store.append_many([("batch.created", {
        "actor": actor("sam.sup", "Sam Supervisor", "supervisor"), "target": target("batch", batch_id),
        "batch_id": batch_id, "recipe_key": recipe.key, "recipe_hash": recipe.content_hash,
        "new": {"recipe": recipe.key}})])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.tuples(_IDS, st.sampled_from([0, 0, 1, 7])), min_size=1, max_size=12,
                        unique_by=lambda b: b[0]),
       page=st.integers(1, 5))
def test_pages_and_positions_follow_newest_first_then_id(floor, batches, page):
    kiosk, clock = floor
    clock.advance(1)  # after every earlier example's batches
    prefix = f"E{next(_SEQ):03d}:"
    made = []
    for suffix, wait in batches:
        clock.advance(wait)  # 0: the same second as the one before, an order decided by id alone
        _start(kiosk, prefix + suffix)
        made.append((kiosk.signing.batch(prefix + suffix)["created_at"], prefix + suffix))
    by_id = sorted(made, key=lambda m: m[1])
    expected = [bid for _at, bid in sorted(by_id, key=lambda m: m[0], reverse=True)]  # stable: ties stay by id
    signing = kiosk.signing
    newest = [d["batch_id"] for d in signing.newest_batches(0, len(made))]
    assert newest == expected
    paged = [d["batch_id"] for start in range(0, len(made), page)
             for d in signing.newest_batches(start, min(page, len(made) - start))]
    assert paged == expected
    assert [signing.batch_position(bid) for bid in expected] == list(range(len(expected)))
    assert signing.newest_batches(signing.batch_count(), 5) == []



def test_open_alerts_are_the_newest_not_acknowledged_and_counted(floor):
    from kiosk.services.auth import Actor

    kiosk, clock = floor
    auth = kiosk.auth
    clock.advance(1)
    for i in range(6):  # three in one second: their order is their ids'
        clock.advance(1 if i % 3 == 0 else 0)
        auth.raise_alert("auth.bad_password", "info", f"listing #{i}", {"kind": "user", "id": "ana.op"})
    everything = auth.alerts()  # the full listing, sorted in Python
    expected = sorted(everything, key=lambda a: a["alert_id"])
    expected.sort(key=lambda a: a["at"], reverse=True)
    acked = expected[1]
    auth.acknowledge_alert(Actor("sam.sup", "Sam Supervisor", "supervisor"), acked["alert_id"], "seen")
    expected = [a["alert_id"] for a in expected if a is not acked]
    for limit in (1, 3, len(expected), len(expected) + 5):
        page, total = auth.open_alerts(limit)
        assert [a["alert_id"] for a in page] == expected[:limit] and total == len(expected)
    assert all(a["acknowledged_by"] is None for a in auth.open_alerts(len(expected))[0])
