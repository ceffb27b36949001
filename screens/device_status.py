"""Device status: the only screen while this terminal is not approved (11.10(h)).

Shown when the registration is unregistered, pending, rejected, revoked (or
any status other than approved). It sits directly above the lock screen, so
the login form is unreachable; the only keys are F10 (an admin exits the
kiosk program) and F12 (lock, which leaves this screen in place). It shows
what an admin needs to approve the terminal safely: the device id, the
chain, the full key fingerprint as text and as a QR code to compare with the
admin's screen, and what to do next. The App polls the status and removes
this screen once the terminal is approved.
"""

from __future__ import annotations

from typing import Callable, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

from kiosk.domain.clock import Clock
from screens.base import FOCUS_BINDINGS, KioskScreen
from screens.nav import KeyBar
from screens.ports import DeviceView, KioskServices
from screens.qr import qr_text
from screens.widgets import StatusBar, safe_text

COMPARE = "Ask a site admin to approve this terminal; compare this fingerprint with the one on their screen."

HEADINGS = {
    "unregistered": ("Terminal not registered yet",
                     "This terminal has not reached the central store yet; its registration request (with its "
                     "public key) goes out at the next sync, so check the network connection. " + COMPARE),
    "pending": ("Waiting for approval",
                "The registration request has arrived. " + COMPARE +
                " Admins find it under Devices (F7) on an admin terminal, or with `kiosk admin devices list`."),
    "rejected": ("Registration rejected",
                 "A site admin rejected this terminal, so nobody can log in here. Ask a site admin; "
                 "registering again needs a new device key (a new chain epoch)."),
    "revoked": ("Registration revoked",
                "A site admin revoked this terminal, so nobody can log in or sign here. Records made before "
                "the revocation are kept and still sent. Ask a site admin."),
}


def qr_payload(view: DeviceView) -> str:
    """What the QR code holds: the fingerprint's hex, upper case, so it fits a small code (alphanumeric mode)."""
    return view.fingerprint.replace(" ", "").upper()


class DeviceStatusScreen(KioskScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        *FOCUS_BINDINGS,
        Binding("f10", "admin_exit", "Exit (admin)"),
    ]

    def __init__(self, view: DeviceView, services: KioskServices, clock: Clock,
                 on_admin_exit: Callable[[], None]) -> None:
        super().__init__(id="device-status")
        self._view = view
        self._services = services
        self._clock = clock
        self._on_admin_exit = on_admin_exit

    @property
    def view(self) -> DeviceView:
        return self._view

    def compose(self) -> ComposeResult:
        with Horizontal(id="device-box"):
            with Vertical(id="device-text"):
                yield Static(self._heading(), id="device-heading", classes="dialog-title")
                yield Static(self._details(), id="device-details")
                yield Static(self._next_text(), id="device-next", classes="dialog-body")
                yield Button("Exit (admin, F10)", id="admin-exit", classes="minor")
            yield Static(qr_text(qr_payload(self._view)), id="device-qr")
        yield KeyBar()
        yield StatusBar(self._clock, self._services.status)

    def _heading(self) -> Text:
        title = HEADINGS.get(self._view.status, (f"Terminal stopped ({self._view.status})", ""))[0]
        return safe_text(title, style="bold reverse")

    def _details(self) -> Text:
        v = self._view
        text = Text()
        for label, value in (("Device", v.device_id), ("Chain", v.chain), ("Status", v.status)):
            text.append(f"{label:<12}", style="bold")
            text.append_text(safe_text(value))
            text.append("\n")
        if v.reason:
            text.append(f"{'Reason':<12}", style="bold")
            text.append_text(safe_text(v.reason))
            text.append("\n")
        text.append("Key fingerprint (SHA-256):\n", style="bold")
        groups = v.fingerprint.split(" ")
        for i in range(0, len(groups), 8):
            text.append_text(safe_text(" ".join(groups[i:i + 8]), style="bold"))
            text.append("\n")
        return text

    def _next_text(self) -> Text:
        default = f"This terminal is not approved ({self._view.status}). " + COMPARE
        return safe_text(HEADINGS.get(self._view.status, ("", default))[1])

    def update_view(self, view: DeviceView) -> None:
        """A newer observation of the same blocked state (status or reason may have changed)."""
        if view == self._view:
            return
        fingerprint_changed = view.fingerprint != self._view.fingerprint
        self._view = view
        if not self.is_mounted:
            return
        self.query_one("#device-heading", Static).update(self._heading())
        self.query_one("#device-details", Static).update(self._details())
        self.query_one("#device-next", Static).update(self._next_text())
        if fingerprint_changed:
            self.query_one("#device-qr", Static).update(qr_text(qr_payload(view)))

    @property
    def shown_text(self) -> str:
        """Everything written on the screen, as plain text (tests read it)."""
        return "\n".join(str(w.render()) for w in self.query(Static) if w.id != "device-qr")

    @on(Button.Pressed, "#admin-exit")
    def _admin_pressed(self) -> None:
        self.action_admin_exit()

    def action_admin_exit(self) -> None:
        self._on_admin_exit()
