"""Audit viewer on the real services (Pilot, FakeClock): pages, filters, record detail, CSV export,
and user text shown literally (markup and terminal escapes in names)."""

import csv

import pytest

from kiosk.app import make_app
from screens.admin_users import UsersScreen
from screens.audit import AuditRecordDialog, AuditScreen
from tests.ui.flows import login, screen_text, type_text, wait_for

EVIL = "[bold]Eve[/bold] \x1b[31mRed"


def plant_user_with_a_hostile_name(kiosk):
    """A user.created record whose names the kiosk's own checks would refuse (as if written by an
    older or foreign version): the screens must still show it as text, never as markup."""
    actor = {"user_id": "eve.x", "name": EVIL, "role": "admin"}
    kiosk.store.append("user.created", {
        "actor": actor, "target": {"kind": "user", "id": "eve.x"}, "reason": f"reason {EVIL}",
        "new": {"user_id": "eve.x", "printed_name": EVIL, "roles": ["operator"]},
        "credential": {"enc": "not-a-real-credential", "temporary": True}, "totp": None,
    })


async def open_audit(pilot, clock, user):
    await login(pilot, clock, user)
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AuditScreen), "the audit viewer")
    await settle(pilot)


async def settle(pilot):
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.1)


def table_types(app):
    table = app.screen.query_one("#audit-table")
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


@pytest.mark.req("A11-9")
@pytest.mark.req("P11-10e")
async def test_qa_filters_opens_a_record_and_exports_the_view(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_audit(pilot, clock, users["quinn.qa"])
        assert table_types(app)[0] == "session.login"  # newest at the top, where the cursor starts
        app.screen.query_one("#f-type").focus()
        await type_text(pilot, "user.created")
        await pilot.press("enter")
        await settle(pilot)
        assert set(table_types(app)) == {"user.created"} and len(table_types(app)) == 5
        app.screen.query_one("#audit-table").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditRecordDialog), "the record")
        shown = app.screen.shown_text
        check = next(line for line in shown.splitlines() if line.startswith("signature check"))
        assert check.split()[-1] == "valid" and "user.created" in shown and "quinn.qa" in shown
        assert "<encrypted secret: not shown>" in shown  # the credential blob is not displayed
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen), "back to the viewer")
        app.screen.query_one("#export").press()
        await wait_for(pilot, lambda: "Exported" in app.screen.message_text, "the export")
        path = app.screen.message_text.rsplit(" to ", 1)[1].strip()
    assert path.startswith(str(kiosk.data_dir / "exports"))
    with open(path, encoding="utf-8-sig") as fh:
        assert [r["type"] for r in csv.DictReader(fh)] == ["user.created"] * 5
    assert "audit.exported" in [r.type for r in kiosk.store.iter_rows()]


@pytest.mark.req("A11-9")
async def test_bad_filters_say_which_field_and_keep_the_page(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_audit(pilot, clock, users["sam.sup"])
        before = table_types(app)
        app.screen.query_one("#f-from").focus()
        await type_text(pilot, "24/11/2026")
        await pilot.press("enter")
        await settle(pilot)
        assert "From" in app.screen.message_text and "is not a date" in app.screen.message_text
        assert table_types(app) == before


@pytest.mark.req("A11-9")
async def test_a_mistyped_record_type_is_named_not_shown_as_an_empty_trail(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_audit(pilot, clock, users["quinn.qa"])
        app.screen.query_one("#f-type").focus()
        await type_text(pilot, "user.create")  # user.created, mistyped
        await pilot.press("enter")
        await settle(pilot)
        assert table_types(app) == []  # the earlier page is not left on screen under the new filter
        assert ("no record in this store has type 'user.create'; did you mean 'user.created'?"
                in app.screen.message_text)
        # A real type that simply has no record in the range says so plainly.
        app.screen.query_one("#f-type").value = "user.created"
        app.screen.query_one("#f-to").focus()
        await type_text(pilot, "2020-01-01")
        await pilot.press("enter")
        await settle(pilot)
        assert table_types(app) == [] and app.screen.message_text == "No records match these filters."


@pytest.mark.req("A11-9")
async def test_pages_older_and_newer_with_page_keys(demo, clock):
    kiosk, users = demo
    for i in range(120):
        clock.advance(1)
        kiosk.store.append("note.added", {"n": i})
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_audit(pilot, clock, users["admin"])
        table = app.screen.query_one("#audit-table")
        assert table.row_count == 50
        newest = str(table.get_row_at(0)[0])
        await pilot.press("pagedown")
        await settle(pilot)
        assert str(table.get_row_at(0)[0]) < newest and "PgUp newer" in str(app.screen.query_one("#page-info").render())
        await pilot.press("pageup")
        await settle(pilot)
        assert str(table.get_row_at(0)[0]) == newest


@pytest.mark.req("A11-12")
@pytest.mark.req("DI-ALCOA")
async def test_markup_and_escapes_in_names_are_shown_literally(demo, clock):
    kiosk, users = demo
    plant_user_with_a_hostile_name(kiosk)
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await login(pilot, clock, users["admin"])
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, UsersScreen), "the users screen")
        shown = screen_text(app)
        assert "[bold]Eve[/bold] \\x1b[31mRed" in shown and "\x1b" not in shown
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen), "the audit viewer")
        await settle(pilot)
        app.screen.query_one("#f-type").focus()
        await type_text(pilot, "user.created")
        await pilot.press("enter")
        await settle(pilot)
        shown = screen_text(app)
        assert "[bold]Eve[/bold]" in shown and "\x1b" not in shown
        app.screen.query_one("#audit-table").focus()
        await pilot.press("enter")  # the newest user.created, at the top: Eve's
        await wait_for(pilot, lambda: isinstance(app.screen, AuditRecordDialog), "the record")
        assert '"printed_name": "[bold]Eve[/bold] \\u001b[31mRed"' in app.screen.shown_text  # JSON, escaped
        assert "[bold]Eve[/bold]" in screen_text(app)


@pytest.mark.req("P11-10g")
async def test_operators_have_no_audit_viewer(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, clock, users["ana.op"])
        await pilot.press("f4")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, AuditScreen)


@pytest.mark.req("A11-9")
async def test_a_batch_id_in_any_case_finds_that_batch_and_an_unknown_one_is_named(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_audit(pilot, clock, users["quinn.qa"])
        app.screen.query_one("#f-batch").focus()
        await type_text(pilot, "PB-2026-001")
        await pilot.press("enter")
        await settle(pilot)
        exact = table_types(app)
        assert "batch.created" in exact
        app.screen.query_one("#f-batch").value = "pb-2026-001"  # as the worklist's Go to batch takes it
        app.screen.query_one("#f-batch").focus()
        await pilot.press("enter")
        await settle(pilot)
        assert table_types(app) == exact
        app.screen.query_one("#f-batch").value = "PB-2026-0001"
        await pilot.press("enter")
        await settle(pilot)
        assert table_types(app) == [] and "this store has no batch 'PB-2026-0001'; check the id" in (
            app.screen.message_text)
