"""The audit viewer's service: keyset pages over the real store, validated filters, detail, recorded export."""

import csv

import pytest

from kiosk.domain.records import parse_raw
from kiosk.services.audit_view import AuditBrowser, AuditQuery, AuditQueryError, to_filter
from kiosk.services.auth import Actor, NotPermitted
from storage.audit_local import LocalAuditSource


class CountingSource(LocalAuditSource):
    """The real source, counting how many rows a page pulled out of the store."""

    pulled = 0

    def iter_raw(self, flt, after=None, before=None):
        for item in super().iter_raw(flt, after, before):
            self.pulled += 1
            yield item


@pytest.fixture
def trail(kiosk, admin, clock, tmp_path):
    actor, _ = admin
    for i in range(120):
        clock.advance(1)
        kiosk.store.append("note.added", {"actor": actor.body(), "batch_id": "B-1" if i % 2 else "B-2", "n": i})
    source = CountingSource(kiosk.store.path)
    browser = AuditBrowser(source, kiosk.auth, kiosk.store, clock, tmp_path / "exports", page_size=50)
    yield browser, actor, source
    source.close()


def ns(page):
    return [r.seq for r in page.rows]


@pytest.mark.req("A11-9")
@pytest.mark.req("P11-10e")
def test_pages_newest_first_then_older_and_back_without_gaps(trail, kiosk):
    browser, actor, source = trail
    flt = to_filter(AuditQuery())
    total = kiosk.store.head().seq
    newest = browser.newest(actor, flt)
    assert ns(newest) == list(range(total - 49, total + 1)) and newest.has_older and not newest.has_newer
    assert source.pulled <= 51  # one page (+1 to know there is more), not the whole trail
    middle = browser.older(actor, flt, newest.first)
    assert ns(middle) == list(range(total - 99, total - 49)) and middle.has_older and middle.has_newer
    oldest = browser.older(actor, flt, middle.first)
    assert ns(oldest) == list(range(1, total - 99)) and not oldest.has_older
    assert ns(browser.newer(actor, flt, oldest.last)) == ns(middle)
    assert ns(browser.oldest(actor, flt))[0] == 1


@pytest.mark.req("A11-9")
def test_filters_by_batch_type_user_and_time(trail, kiosk, clock):
    browser, actor, _ = trail
    page = browser.newest(actor, to_filter(AuditQuery(batch="B-1", types="note.added")))
    assert len(page.rows) == 50 and {r.batch_id for r in page.rows} == {"B-1"}
    assert {r.type for r in browser.newest(actor, to_filter(AuditQuery(types="user.created"))).rows} == {"user.created"}
    mine = browser.newest(actor, to_filter(AuditQuery(user="SITE.ADMIN")))
    assert mine.rows and {r.user_id for r in mine.rows} == {"site.admin"}
    first = browser.oldest(actor, to_filter(AuditQuery(types="note.added"))).rows
    window = to_filter(AuditQuery(types="note.added", start=first[0].ts_utc, end=first[3].ts_utc))
    assert [r.seq for r in browser.newest(actor, window).rows] == [r.seq for r in first[:3]]
    day = first[0].ts_utc[:10]
    assert len(browser.newest(actor, to_filter(AuditQuery(types="note.added", start=day, end=day))).rows) == 50


@pytest.mark.req("A11-9")
@pytest.mark.parametrize("query, message", [
    (AuditQuery(start="yesterday"), "From 'yesterday' is not a date"),
    (AuditQuery(end="2026-13-01"), "To"),
    (AuditQuery(start="2026-11-25", end="2026-11-24T00:00:00Z"), "From must be earlier than To"),
    (AuditQuery(user="bad user!"), "User:"),
    (AuditQuery(types="step.signed; DROP TABLE"), "Type:"),
    (AuditQuery(batch="B" * 41), "Batch:"),
])
def test_bad_filters_are_refused_with_the_field_named(query, message):
    with pytest.raises(AuditQueryError) as err:
        to_filter(query)
    assert message.replace("'", "") in str(err.value)


@pytest.mark.req("P11-10d")
@pytest.mark.req("P11-10g")
def test_only_review_roles_read_the_trail(trail, kiosk, admin):
    browser, _, _ = trail
    actor, _ = admin
    kiosk.auth.create_user(actor, "jane.op", "Jane Operator", ["operator"], reason="starter", identity_verified=True)
    with pytest.raises(NotPermitted):
        browser.newest(Actor("jane.op", "Jane Operator", "operator"), to_filter(AuditQuery()))
    with pytest.raises(NotPermitted):
        browser.newest(Actor("jane.op", "Jane Operator", "admin"), to_filter(AuditQuery()))  # a role she lacks


@pytest.mark.req("P11-10e")
def test_detail_shows_the_record_and_its_checked_signature(trail, kiosk):
    browser, actor, _ = trail
    row = browser.newest(actor, to_filter(AuditQuery(types="note.added"))).rows[-1]
    detail = browser.detail(actor, row.device, row.seq)
    assert detail.verified and detail.record.body["n"] == 119 and detail.hash_hex == row.hash
    assert len(detail.signature_b64) == 86
    with pytest.raises(AuditQueryError, match="not in this store"):
        browser.detail(actor, row.device, 10_000)


@pytest.mark.req("P11-10b")
@pytest.mark.req("P11-10e")
def test_export_writes_the_filtered_view_and_records_who_exported_it(trail, kiosk, tmp_path):
    browser, actor, _ = trail
    path, count = browser.export_csv(actor, to_filter(AuditQuery(batch="B-2")))
    assert path.parent == tmp_path / "exports" and count == 60
    with open(path, encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and {r["batch_id"] for r in rows} == {"B-2"}
    last = parse_raw(list(kiosk.store.iter_rows())[-1].raw)[0]
    assert last.type == "audit.exported" and last.body["actor"]["user_id"] == "site.admin"
    assert last.body["filters"] == {"batch": "B-2"} and last.body["rows"] == 60 and last.body["file"] == path.name
