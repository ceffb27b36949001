"""`kiosk demo`: a complete kiosk with demo people, recipes and batches, nothing to install.

Everything is created through the same services a real site uses, so every
demo user, recipe and batch is a signed record in the demo chain. Demo
passwords are public by design and the banner shows the current one-time
codes; this data directory is temporary and must never be used for GMP work.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyotp

from kiosk.app import Kiosk, build_kiosk, shipped_recipes
from kiosk.config import KioskConfig
from kiosk.domain.clock import Clock
from kiosk.domain.passwords import PasswordHasher
from kiosk.services.auth import Actor
from kiosk.services.central_admin import CENTRAL_KEY_HOLDER
from kiosk.services.config_trail import record_settings

DEMO_PASSWORD = "demo kiosk password"


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    name: str
    roles: tuple[str, ...]
    badge: str
    totp_secret: str


PEOPLE = [
    ("ana.op", "Ana Ortiz", ("operator",), "1001"),
    ("ben.op", "Ben Okafor", ("operator",), "1002"),
    ("sam.sup", "Sam Supervisor", ("supervisor",), "2001"),
    ("quinn.qa", "Quinn QA", ("qa",), "3001"),
]


def demo_config() -> KioskConfig:
    return KioskConfig().replace(site={"name": "Demo site (not for GMP use)", "timezone": "Europe/Dublin"})


def create_demo(data_dir: Path | None, clock: Clock, hasher: PasswordHasher | None = None,
                device_id: str = "demo-kiosk") -> tuple[Kiosk, list[DemoUser]]:
    """``device_id``: several demo terminals (reliability and load tests) need distinct chains."""
    data_dir = Path(data_dir or tempfile.mkdtemp(prefix="kiosk-demo-"))
    kiosk = build_kiosk(demo_config(), data_dir, clock, device_id=device_id, hasher=hasher)
    record_settings(kiosk.store, kiosk.config.settings(), "the demo's built-in configuration", device_id)
    auth = kiosk.auth
    users: list[DemoUser] = []
    admin_issued = auth.bootstrap("admin", "Ada Admin")
    _set_password(kiosk, admin_issued.user_id, admin_issued.temporary_password, admin_issued.totp_secret, clock)
    admin = Actor("admin", "Ada Admin", "admin")
    users.append(DemoUser("admin", "Ada Admin", ("admin",), "", admin_issued.totp_secret or ""))
    for uid, name, roles, badge in PEOPLE:
        issued = auth.create_user(admin, uid, name, roles, reason="demo user", identity_verified=True,
                                  verification_method="demo data: no real person", badge_id=badge)
        _set_password(kiosk, uid, issued.temporary_password, issued.totp_secret, clock)
        users.append(DemoUser(uid, name, roles, badge, issued.totp_secret or ""))
    # The demo people accept the e-signature statement at their first login, on screen, like real users.
    for path in shipped_recipes():
        kiosk.signing.register_recipe_file(path, admin.body(), "demo recipes")
    sup = next(u for u in users if u.user_id == "sam.sup")
    _login(kiosk, sup, clock)
    kiosk.signing.create_batch("PB-2026-001", "buffer-prep@4")
    kiosk.signing.create_batch("TAB-2026-014", "tablet-compression@8")
    kiosk.session.logout()
    return kiosk, users


def demo_central(kiosk: Kiosk):
    """An embedded SQLite central store next to the demo kiosk, with this terminal approved."""
    from kiosk.app import central_sync
    from storage.central import CentralStore, default_key_file
    from storage.keyfile import load_or_create_central_key

    url = f"sqlite:///{kiosk.data_dir / 'central.db'}"
    # Where the admin commands look by default, so `kiosk central rebase --url ...` works on the demo's store too.
    key = load_or_create_central_key(default_key_file(url))
    central, sync = central_sync(kiosk, url, central=CentralStore.open(url, kiosk.clock, key))
    sync.sync_once()
    central.ingest_all()
    # No admin exists centrally yet (this terminal's records wait for its approval), so the holder of the
    # central key approves the first terminal, as at a real site.
    central.decide_device(kiosk.store.chain, "approved", CENTRAL_KEY_HOLDER, "demo set-up: the demo terminal")
    for _ in range(3):  # the terminal records that it saw its approval, pulls the directory; all synced
        central.ingest_all()
        sync.sync_once()
    return central, sync


def _set_password(kiosk: Kiosk, uid: str, temporary: str, secret: str | None, clock: Clock) -> None:
    # Use the previous step's code (accepted within the ±1 step window) so the code the banner
    # shows now is still unused when a newcomer types it.
    import datetime as dt

    code = pyotp.TOTP(secret).at(clock.now() - dt.timedelta(seconds=30)) if secret else None
    result = kiosk.auth.change_password(uid, temporary, DEMO_PASSWORD, code)
    if not result.ok:
        raise RuntimeError(f"demo set-up could not set the password of {uid}: {result.message}")


def _login(kiosk: Kiosk, user: DemoUser, clock: Clock) -> None:
    code = pyotp.TOTP(user.totp_secret).at(clock.now())
    outcome = kiosk.session.login(user.user_id, DEMO_PASSWORD, code)
    if not outcome.ok:
        raise RuntimeError(f"demo set-up could not log in {user.user_id}: {outcome.message}")


def banner_text(users: list[DemoUser], clock: Clock, kiosk: Kiosk | None = None) -> str:
    """Demo credentials and, per user, a one-time code that is still unused right now.

    Codes are single use: once this step's code is used (a login, a signature), the banner
    shows the next step's code, which the ±1 step window accepts immediately.
    """
    import datetime as dt

    now = clock.now()
    step = int(now.timestamp()) // 30
    left = 30 - int(now.timestamp()) % 30
    lines = [f"DEMO — every password is '{DEMO_PASSWORD}'. Unused one-time codes (change in {left:2d} s):"]
    cells = []
    for u in users:
        doc = kiosk.directory.get("user", u.user_id) if kiosk else None
        used = doc is not None and doc.get("totp_last_step", -1) >= step
        at = now + dt.timedelta(seconds=30) if used else now
        if doc is not None and doc.get("totp_last_step", -1) >= step + 1:
            code = "wait"
        else:
            code = pyotp.TOTP(u.totp_secret).at(at)
        cells.append(f"{u.user_id} {code} ({'/'.join(u.roles)}{', badge ;' + u.badge if u.badge else ''})")
    for i in range(0, len(cells), 2):
        lines.append("   ".join(c.ljust(44) for c in cells[i:i + 2]).rstrip())
    return "\n".join(lines)
