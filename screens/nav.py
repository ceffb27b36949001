"""One way around the kiosk: the same function keys on every screen after login.

    F2 Worklist · F3 Supervisor · F4 Audit · F6 Users · F7 Devices · F8 Recipes
    F5 Refresh · F9 Log out · F12 Lock (everywhere, also in dialogs)

Which areas a person may open comes from the services (``SessionInfo.areas``);
a key for an area the session does not have is neither shown nor active, and
the services check the role again on every call. The worklist is the home
screen; every other area sits directly above it, so Escape (or F2) always
leads back home and the stack never grows.

:class:`KeyBar` lists the keys the current screen answers to, from the live
bindings, wrapping to a second line on a narrow terminal.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget

from kiosk.domain.clock import Clock
from screens.base import FOCUS_BINDINGS, KioskScreen
from screens.ports import KioskServices, SessionInfo

AREAS: dict[str, tuple[str, str]] = {
    "worklist": ("f2", "Worklist"),
    "supervisor": ("f3", "Supervisor"),
    "audit": ("f4", "Audit"),
    "users": ("f6", "Users"),
    "devices": ("f7", "Devices"),
    "recipes": ("f8", "Recipes"),
}

NAV_BINDINGS: list[BindingType] = [
    *(Binding(key, f"nav('{area}')", label) for area, (key, label) in AREAS.items()),
    Binding("f9", "logout", "Log out"),
]


class Navigator:
    """Builds the screen of an area and keeps the stack at [lock, worklist, area]."""

    def __init__(self, session: SessionInfo, services: KioskServices, work: Any, admin: Any, clock: Clock) -> None:
        self.session = session
        self.services = services
        self.work = work
        self.admin = admin
        self.clock = clock
        self.home: Screen[Any] | None = None

    def allowed(self, area: str) -> bool:
        if area == "worklist":
            return True
        return area in self.session.areas and (area in ("supervisor",) or self.admin is not None)

    def build(self, area: str) -> Screen[Any]:
        if area == "supervisor":
            from screens.supervisor import SupervisorScreen

            return SupervisorScreen(self)
        if area == "audit":
            from screens.audit import AuditScreen

            return AuditScreen(self)
        if area == "users":
            from screens.admin_users import UsersScreen

            return UsersScreen(self)
        if area == "devices":
            from screens.admin_devices import DevicesScreen

            return DevicesScreen(self)
        if area == "recipes":
            from screens.admin_recipes import RecipesScreen

            return RecipesScreen(self)
        raise ValueError(f"no area {area!r}")

    def go(self, app: Any, area: str) -> None:
        home = self.home
        current = app.screen
        if getattr(current, "AREA", None) == area or home is None or home not in app.screen_stack:
            return  # already there, or locked meanwhile: the lock screen is in charge
        if area == "worklist":
            if current is not home:
                home.pop_until_active()
            return
        app.push_above(home, self.build(area))


KEY_NAMES = {"escape": "Esc", "pageup": "PgUp", "pagedown": "PgDn", "enter": "Enter", "tab": "Tab"}


def key_label(key: str) -> str:
    """How a key is written on the key bar: F2, Esc, PgUp, N."""
    if re.fullmatch(r"f\d+", key):
        return key.upper()
    return KEY_NAMES.get(key, key.upper() if len(key) == 1 else key)


def _key_order(key: str) -> tuple[int, str]:
    match = re.fullmatch(r"f(\d+)", key)
    return (1, f"{int(match.group(1)):03d}") if match else (0, key)


class KeyBar(Widget):
    """The keys this screen answers to, e.g. ``Enter Open · Esc Back · F2 Worklist · … · F12 Lock``."""

    DEFAULT_CSS = """
    KeyBar {
        height: auto;
        width: 1fr;
        background: #1A1A1A;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, extra: tuple[tuple[str, str], ...] = (), id: str | None = "key-bar") -> None:
        super().__init__(id=id)
        self._extra = extra  # keys handled by widgets rather than bindings, e.g. ("Enter", "Open")

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: Screen[Any]) -> None:
        self.refresh(layout=True)

    def keys(self) -> list[tuple[str, str]]:
        """(key label, description) as shown, in order."""
        shown: list[tuple[str, str, str]] = []
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show or not active.enabled or not binding.description:
                continue
            shown.append((key, key_label(key), binding.description))
        shown.sort(key=lambda item: _key_order(item[0]))
        return list(self._extra) + [(label, description) for _, label, description in shown]

    def render(self) -> Text:
        text = Text(end="")
        for i, (label, description) in enumerate(self.keys()):
            if i:
                text.append(" · ")
            text.append(label, style="bold reverse")
            text.append(" " + description)
        return text


class NavScreen(KioskScreen):
    """A screen reached after login: the navigation keys, F5 refresh, F9 log out, Escape back home."""

    AREA: ClassVar[str] = ""
    KEYS: ClassVar[tuple[tuple[str, str], ...]] = ()  # shown before the bindings, e.g. (("Enter", "Open"),)

    BINDINGS: ClassVar[list[BindingType]] = [
        *FOCUS_BINDINGS,
        Binding("escape", "back", "Back"),
        *NAV_BINDINGS,
        Binding("f5", "refresh", "Refresh"),
    ]

    def __init__(self, nav: Navigator, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.nav = nav

    def key_bar(self) -> KeyBar:
        return KeyBar(self.KEYS)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "nav" and parameters:
            area = str(parameters[0])
            return area != self.AREA and self.nav.allowed(area)
        if action == "back":
            return self.AREA != "worklist"
        return True

    def action_nav(self, area: str) -> None:
        if not self.nav.allowed(area):
            self.app.notify("That screen is not available for your role.", markup=False)
            return
        self.nav.go(self.app, area)

    def action_back(self) -> None:
        self.nav.go(self.app, "worklist")

    def action_logout(self) -> None:
        self.app.logout()  # type: ignore[attr-defined]

    def action_refresh(self) -> None:
        """Reload what the screen shows (each screen fills this in)."""
