"""The kiosk App: a hardened Textual shell around the services.

Hardening (Textual 8.2.8)
-------------------------
* ``inherit_bindings=False``: App's default ``ctrl+q -> quit`` (priority) and
  ``ctrl+c -> help_quit`` are gone; the only App bindings are F12 (lock,
  priority, works in every screen and modal). Screens and dialogs derive from
  ``screens.base`` which also drops Screen's ``ctrl+c -> screen.copy_text``.
* ``ENABLE_COMMAND_PALETTE = False`` and ``action_command_palette`` does
  nothing; ``action_quit``, ``action_help_quit``, ``action_suspend_process``
  and the screen-stack / theme / screenshot actions are neutralised too, so
  nothing (a binding added later, an ``@click`` in some markup) reaches them.
* The lock screen is the *default* screen (bottom of the stack): it cannot be
  popped, and every lock pops back to it with ``pop_until_active``.
* Exit only through :class:`~screens.dialogs.AdminExitDialog` (F10 / button
  on the lock screen), verified by ``services.verify_admin_exit``.

Device registration
-------------------
``services.device_view()`` is polled every ``device_poll_s`` of the injected
clock (checked on the same 1 s tick as idle). Anything but "approved" puts
:class:`~screens.device_status.DeviceStatusScreen` directly above the lock
screen: the login form is unreachable, a session that was open is locked
first (reason "device", its draft kept), and every later lock (F12, idle)
pops back to the device screen, not past it. Approved again: back to login.

Idle
----
Real input (Key, MouseDown, MouseScrollUp/Down, Paste) is timestamped with the
injected clock's ``monotonic()`` in :meth:`KioskApp.on_event`, before any
screen can consume it. :meth:`KioskApp.check_inactivity` runs every
``idle_check_s`` (1 s) and compares against the policy: at
``idle_timeout_s - idle_warning_s`` it shows :class:`IdleWarning` with a
countdown; at ``idle_timeout_s`` it locks (``services.on_idle_lock()``).
While the warning is shown, a key only dismisses it (it is not passed on to
the screen underneath - except F12, which locks).

Errors
------
No traceback reaches the screen. Textual sends every unhandled exception to
``App._handle_exception``, which by default exits and prints a traceback; here
it becomes an error notice plus ``services.report_error(exc)`` and the app
keeps running. Because Textual also ends a message pump's loop after a
handler raised, the App and every kiosk screen catch exceptions around
``_dispatch_message`` (``screens.base.GuardedPump``) and report them the same
way, so the screen that failed keeps responding. Exceptions before the App
is up (start-up, stylesheet errors) keep Textual's behaviour: the kiosk does
not start.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.theme import Theme
from textual.worker import WorkerFailed

from kiosk.domain.clock import Clock
from screens.device_status import DeviceStatusScreen
from screens.dialogs import AdminExitDialog, IdleWarning
from screens.login import LockReason, LockScreen, SessionScreen
from screens.ports import DeviceView, KioskServices, SessionInfo

LOCK_KEY = "f12"

ACTIVITY_EVENTS = (events.Key, events.MouseDown, events.MouseScrollUp, events.MouseScrollDown, events.Paste)

ERROR_NOTICE = (
    "Something went wrong and that action was not completed. "
    "The error has been recorded. If it happens again, call your supervisor."
)

HIGH_CONTRAST = Theme(
    name="kiosk-high-contrast",
    primary="#FFD700",
    secondary="#00BFFF",
    accent="#FFD700",
    warning="#FFA500",
    error="#FF4040",
    success="#40FF40",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1A1A1A",
    dark=True,
)


class SessionPolicy(Protocol):
    """What the App reads from ``kiosk.config.SessionConfig``."""

    @property
    def idle_timeout_s(self) -> int: ...

    @property
    def idle_warning_s(self) -> int: ...


HomeFactory = Callable[[SessionInfo], Screen[Any]]


class KioskApp(App[None], inherit_bindings=False):
    """The kiosk. All dependencies are injected; see ``screens.ports``."""

    CSS_PATH = Path(__file__).with_name("kiosk.tcss")  # absolute: subclasses elsewhere still find it
    TITLE = "Signing kiosk"
    ENABLE_COMMAND_PALETTE = False
    ALLOW_SELECT = False  # no screen-level text selection/copy on a shared terminal
    ESCAPE_TO_MINIMIZE = False
    NOTIFICATION_TIMEOUT = 8

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(LOCK_KEY, "lock", "Lock", priority=True),
    ]

    def __init__(
        self,
        *,
        clock: Clock,
        session_policy: SessionPolicy,
        services: KioskServices,
        on_exit_request: Callable[[str], None] | None = None,
        home_factory: HomeFactory | None = None,
        idle_check_s: float = 1.0,
        device_poll_s: float = 2.0,
    ) -> None:
        timeout = int(session_policy.idle_timeout_s)
        warning = int(session_policy.idle_warning_s)
        if not 0 < warning < timeout:
            raise ValueError(
                f"idle_warning_s ({warning}) must be above 0 and below idle_timeout_s ({timeout})"
            )
        super().__init__()
        self.clock = clock
        self.services = services
        self.idle_timeout_s = timeout
        self.idle_warning_s = warning
        self._on_exit_request = on_exit_request
        self._home_factory = home_factory
        self._idle_check_s = idle_check_s
        self.device_poll_s = device_poll_s
        self.device: DeviceView | None = None
        self.device_screen: DeviceStatusScreen | None = None
        self._last_device_poll = clock.monotonic()
        self.session: SessionInfo | None = None
        self._last_input = clock.monotonic()
        self._idle_warning: IdleWarning | None = None
        self._started = False
        self._last_notice: tuple[str, float] | None = None
        self.errors_reported = 0
        self.lock_screen = LockScreen(
            services, clock, on_login=self._logged_in, on_admin_exit=self.request_admin_exit
        )
        self.register_theme(HIGH_CONTRAST)
        self.theme = HIGH_CONTRAST.name

    # -- screens -----------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return self.lock_screen

    def on_mount(self) -> None:
        self._started = True
        self._last_input = self.clock.monotonic()
        self.check_device(force=True)
        self.set_interval(self._idle_check_s, self.check_inactivity, name="idle-check")
        self.set_interval(self._idle_check_s, self.check_device, name="device-check")

    def open_dialog(self, screen: Screen[Any], callback: Callable[[Any], Any] | None = None) -> None:
        """Push a dialog with the App as the callback's requester.

        Textual runs a dialog's result callback on the message pump that
        pushed it. If that is a screen a lock pops away, the callback can be
        lost; the App is never popped, so a dialog opened here always gets
        its callback - with None when it was locked away.
        """
        with self._context():
            self.push_screen(screen, callback)

    # -- device registration --------------------------------------------------------

    def check_device(self, force: bool = False) -> None:
        """Poll this terminal's registration every ``device_poll_s`` (by the injected clock).

        Not approved: the device status screen becomes the only screen (a session
        that was open is locked first, its draft kept). Approved again: back to login.
        """
        now = self.clock.monotonic()
        if not force and now - self._last_device_poll < self.device_poll_s:
            return
        self._last_device_poll = now
        try:
            view = self.services.device_view()
        except Exception as exc:  # noqa: BLE001 - keep the last known state; the error is recorded
            self.handle_unexpected_error(exc, notify=False)
            return
        self.device = view
        if view.usable:
            if self.device_screen is not None:
                self._leave_device_screen()
            return
        if self.device_screen is not None:
            self.device_screen.update_view(view)
            return
        if self.session is not None:
            self.lock("device")
        if self.lock_screen.is_mounted:
            self.lock_screen.reset()  # nothing half-typed stays behind the device screen
        self.device_screen = DeviceStatusScreen(view, self.services, self.clock, self.request_admin_exit)
        self.push_above(self.lock_screen, self.device_screen)

    def push_above(self, bottom: Screen[Any], screen: Screen[Any]) -> None:
        """Pop everything above ``bottom`` (dialogs get None), then push ``screen``.

        Textual pops asynchronously (``pop_until_active`` schedules the pops), so
        the push is scheduled after them; pushing at once would put ``screen``
        under screens that are about to be popped.
        """
        if self.screen is bottom:
            self.push_screen(screen)
            return
        bottom.pop_until_active()
        self.call_later(self.push_screen, screen)

    def _leave_device_screen(self) -> None:
        screen, self.device_screen = self.device_screen, None
        if screen is not None and screen in self.screen_stack:
            self.lock_screen.pop_until_active()
        self.lock_screen.show_locked(None, "start")

    # -- idle --------------------------------------------------------------------

    @property
    def idle_warning(self) -> IdleWarning | None:
        return self._idle_warning

    def seconds_idle(self) -> float:
        return self.clock.monotonic() - self._last_input

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, ACTIVITY_EVENTS) and not event.is_forwarded:
            self._last_input = self.clock.monotonic()
            warning = self._idle_warning
            if warning is not None:
                if isinstance(event, events.Key) and event.key != LOCK_KEY:
                    self._dismiss_idle_warning()
                    return  # the key only said "I'm here"; it must not act on the screen below
                if isinstance(event, events.Paste):
                    self._dismiss_idle_warning()
                    return
                if not isinstance(event, events.Key):
                    # Mouse: deliver to the warning (top screen) first, then close it,
                    # so the press can never become a click on the screen below.
                    await super().on_event(event)
                    self._dismiss_idle_warning()
                    return
        await super().on_event(event)

    def check_inactivity(self) -> None:
        """Compare time since the last real input with the policy (runs every second)."""
        if self.session is None:
            if self._idle_warning is not None:
                self._dismiss_idle_warning()
            if self.seconds_idle() >= self.idle_timeout_s and self.lock_screen.has_typed_input():
                self.lock_screen.reset()  # a half-typed login left on a shared terminal
            return
        idle = self.seconds_idle()
        if idle >= self.idle_timeout_s:
            self.lock("idle")
            return
        remaining = math.ceil(self.idle_timeout_s - idle)
        if idle >= self.idle_timeout_s - self.idle_warning_s:
            if self._idle_warning is None:
                self._idle_warning = IdleWarning(remaining)
                self.open_dialog(self._idle_warning, self._idle_warning_closed)
            else:
                self._idle_warning.set_seconds_left(remaining)
        elif self._idle_warning is not None:
            self._dismiss_idle_warning()

    def _dismiss_idle_warning(self) -> None:
        warning, self._idle_warning = self._idle_warning, None
        # Only ever close the warning itself; a dialog above it (opened by a
        # worker callback) is left alone and the warning closes itself when
        # it comes back to the top (IdleWarning.on_screen_resume).
        if warning is not None and self.screen is warning:
            warning.dismiss(None)

    def _idle_warning_closed(self, _result: None) -> None:
        self._idle_warning = None

    # -- lock / login / logout ---------------------------------------------------------

    def action_lock(self) -> None:
        """F12: lock now, from any screen or dialog."""
        self.lock("manual")

    def lock(self, reason: LockReason = "manual") -> None:
        """End the session's continuity and pop everything back to the lock screen.

        Every dialog above the lock screen is dismissed with None (a sign
        dialog closed this way means *not signed*).
        """
        session, self.session = self.session, None
        self._idle_warning = None
        if session is not None:
            hook = {"idle": self.services.on_idle_lock,
                    "device": self.services.on_device_lock}.get(reason, self.services.on_manual_lock)
            try:
                hook()
            except Exception as exc:  # noqa: BLE001 - the lock happens regardless
                self.handle_unexpected_error(exc)
            self.lock_screen.show_locked(session, reason)
        else:
            self.lock_screen.reset()
        self._pop_to_bottom()

    def _pop_to_bottom(self) -> None:
        """Back to the lock screen, or to the device status screen while the terminal is not approved."""
        bottom = self.device_screen if self.device_screen is not None else self.lock_screen
        if bottom not in self.screen_stack:
            bottom = self.lock_screen
        if self.screen is not bottom:
            bottom.pop_until_active()

    def logout(self) -> None:
        session, self.session = self.session, None
        self._idle_warning = None
        try:
            self.services.logout()
        except Exception as exc:  # noqa: BLE001
            self.handle_unexpected_error(exc)
        self.lock_screen.show_locked(session, "logout")
        self._pop_to_bottom()

    def _logged_in(self, session: SessionInfo) -> None:
        if self.device_screen is not None:
            # The terminal stopped being approved while the password was checked: no session here.
            try:
                self.services.on_device_lock()
            except Exception as exc:  # noqa: BLE001
                self.handle_unexpected_error(exc, notify=False)
            return
        self.session = session
        self._last_input = self.clock.monotonic()
        if self._home_factory is not None:
            home = self._home_factory(session)
        else:
            home = SessionScreen(session, self.services, self.clock, on_logout=self.logout)
        self.push_screen(home)

    # -- admin exit ----------------------------------------------------------------

    def request_admin_exit(self) -> None:
        """Open the admin exit dialog; exit only when the services accept the admin."""
        if isinstance(self.screen, AdminExitDialog):
            return
        self.open_dialog(AdminExitDialog(self.services.verify_admin_exit), self._admin_exit_result)

    def _admin_exit_result(self, admin_user_id: str | None) -> None:
        if not admin_user_id:
            return
        if self._on_exit_request is not None:
            try:
                self._on_exit_request(admin_user_id)
            except Exception as exc:  # noqa: BLE001 - the admin was verified: exit anyway
                self.handle_unexpected_error(exc, notify=False)
        self.exit(return_code=0)

    # -- neutralised actions ------------------------------------------------------------

    async def action_quit(self) -> None:
        self._explain_no_exit()

    def action_help_quit(self) -> None:
        self._explain_no_exit()

    def action_suspend_process(self) -> None:
        return None

    def action_command_palette(self) -> None:
        return None

    def action_change_theme(self) -> None:
        return None

    def action_toggle_dark(self) -> None:
        return None

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        return None

    async def action_pop_screen(self) -> None:
        return None

    async def action_back(self) -> None:
        return None

    async def action_switch_screen(self, screen: str) -> None:
        return None

    async def action_push_screen(self, screen: str) -> None:
        return None

    async def action_switch_mode(self, mode: str) -> None:
        return None

    def _explain_no_exit(self) -> None:
        self.notify(
            "This terminal stays on. An administrator can exit from the lock screen (F10).",
            title="Kiosk",
            markup=False,
        )

    # -- errors ------------------------------------------------------------------------

    def handle_unexpected_error(self, exc: BaseException, *, notify: bool = True) -> None:
        """Record ``exc`` through the services and show a plain notice. Never raises."""
        if isinstance(exc, WorkerFailed) and isinstance(exc.error, BaseException):
            exc = exc.error
        self.errors_reported += 1
        try:
            self.services.report_error(exc)
        except Exception:  # noqa: BLE001 - recording failed; the notice still shows
            self.log.error("report_error failed")
        if not notify:
            return
        try:
            now = self.clock.monotonic()
            key = type(exc).__name__
            if self._last_notice is not None and self._last_notice[0] == key and now - self._last_notice[1] < 2:
                return  # the same error repeating: one notice is enough
            self._last_notice = (key, now)
            self.notify(ERROR_NOTICE, title="Error", severity="error", timeout=15, markup=False)
        except Exception:  # noqa: BLE001 - never let the error path raise
            self.log.error("could not show the error notice")

    def _handle_exception(self, error: Exception) -> None:
        if not self._started or self._exit:
            super()._handle_exception(error)
            return
        self.handle_unexpected_error(error)

    async def _dispatch_message(self, message: Message) -> None:
        try:
            await super()._dispatch_message(message)
        except Exception as exc:  # noqa: BLE001 - see "Errors" in the module docstring
            if not self._started:
                raise
            self.handle_unexpected_error(exc)
