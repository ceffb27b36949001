"""One way around the kiosk, by role, keyboard only, at 80x24 (Pilot, real services)."""

import pytest

from kiosk.app import make_app
from screens.admin_recipes import RecipeDialog, RecipesScreen
from screens.worklist import WorklistScreen
from tests.ui.flows import login, wait_for

AREA_KEYS = {"supervisor": "f3", "audit": "f4", "users": "f6", "devices": "f7", "recipes": "f8"}
BY_USER = {
    "ana.op": (),
    "quinn.qa": ("audit",),
    "sam.sup": ("supervisor", "audit"),
    "admin": ("supervisor", "audit", "users", "devices", "recipes"),
}


def keys(app):
    return dict(app.screen.query_one("KeyBar").keys())


@pytest.mark.req("P11-10g")
@pytest.mark.req("A11-12")
@pytest.mark.parametrize("user_id", list(BY_USER))
async def test_each_role_reaches_exactly_its_screens_by_function_keys(demo, clock, user_id):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    allowed = BY_USER[user_id]
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, clock, users[user_id])
        home = app.screen
        shown = keys(app)
        assert shown["F12"] == "Lock" and shown["F9"] == "Log out" and shown["F5"] == "Refresh"
        assert {k for k in shown if k in ("F3", "F4", "F6", "F7", "F8")} == {AREA_KEYS[a].upper() for a in allowed}
        for area, key in AREA_KEYS.items():
            await pilot.press(key)
            await pilot.pause(0.15)
            if area in allowed:
                assert getattr(app.screen, "AREA", None) == area, (area, app.screen)
                assert app.screen_stack == [app.lock_screen, home, app.screen]  # never deeper
                listed = keys(app)
                assert listed["Esc"] == "Back" and listed["F2"] == "Worklist" and key.upper() not in listed
                await pilot.press("escape")
                await pilot.pause(0.15)
            assert app.screen is home, (area, app.screen)


@pytest.mark.req("A11-12")
async def test_admin_moves_between_areas_directly_and_f2_goes_home(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, clock, users["admin"])
        home = app.screen
        for key, area in (("f3", "supervisor"), ("f4", "audit"), ("f6", "users"), ("f7", "devices"),
                          ("f8", "recipes"), ("f3", "supervisor")):
            await pilot.press(key)
            await pilot.pause(0.15)
            assert app.screen.AREA == area and len(app.screen_stack) == 3
        await pilot.press("f2")
        await pilot.pause(0.15)
        assert app.screen is home and isinstance(home, WorklistScreen)
        await pilot.press("f9")
        await pilot.pause(0.15)
        assert app.screen is app.lock_screen and app.session is None


async def recipes_table(pilot, clock, admin):
    """The admin logged in and on the Recipes screen (F8): its table."""
    await login(pilot, clock, admin)
    await pilot.press("f8")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RecipesScreen), "the recipes")
    return pilot.app.screen.query_one("#recipe-table")


@pytest.mark.req("P11-10k")
async def test_recipes_list_versions_and_show_steps_with_meanings(demo, clock):
    kiosk, users = demo
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await recipes_table(pilot, clock, users["admin"])
        assert table.row_count == 2 and [str(table.get_row_at(i)[1]) for i in range(2)] == ["4", "8"]
        assert [str(table.get_row_at(i)[5]) for i in range(2)] == ["current", "current"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipeDialog), "the recipe detail")
        text = str(app.screen.query_one("#recipe-text").render())
        assert "buffer-prep@4 (version 4)" in text and "1. Line clearance" in text
        assert "batches started by any role; current" in text
        assert "signs: Verified by operator or qa, not the Performed signer" in text
        assert "signs: Approved by qa, only with Deviations none or closed" in text
        assert "field: Net weight [kg] 1.480 .. 1.520" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipesScreen), "back to the recipes")


@pytest.mark.req("P11-10k")
async def test_a_version_registered_ahead_shows_when_it_takes_effect(demo, clock, tmp_path):
    from kiosk.app import shipped_recipes
    from kiosk.services.auth import Actor
    from tests.services.test_signing import register_recipe

    kiosk, users = demo
    shipped = next(p for p in shipped_recipes() if p.name == "buffer-preparation.toml").read_text()
    register_recipe(kiosk, Actor("admin", "Ada Admin", "admin"), tmp_path,
                    shipped.replace("version = 4", 'version = 5\neffective_from = "2026-12-15"'))
    app = make_app(kiosk, idle_check_s=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await recipes_table(pilot, clock, users["admin"])
        status = {f"{table.get_row_at(i)[0]}@{table.get_row_at(i)[1]}": str(table.get_row_at(i)[5])
                  for i in range(table.row_count)}
        assert status == {"buffer-prep@4": "current", "buffer-prep@5": "takes effect 2026-12-15",
                          "tablet-compression@8": "current"}
