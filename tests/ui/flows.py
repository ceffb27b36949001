"""Pilot helpers for flows on the real services (the demo kiosk): type, log in, wait for a screen."""

import pyotp

from screens.onboarding import FirstUseDialog
from screens.step import StepScreen
from screens.worklist import WorklistScreen
from kiosk.demo import DEMO_PASSWORD


def notices(app) -> list[str]:
    """The messages ``app`` shows as notifications from now on, in order (instead of showing them)."""
    told: list[str] = []
    app.notify = lambda message, **_: told.append(message)
    return told


async def type_text(pilot, text):
    for ch in text:
        await pilot.press("space" if ch == " " else ch)


async def login(pilot, clock, user):
    await enter_credentials(pilot, clock, user.user_id, DEMO_PASSWORD, user.totp_secret)
    for _ in range(50):
        await pilot.pause(0.05)
        if isinstance(pilot.app.screen, FirstUseDialog):
            await pilot.pause(0.1)
            await pilot.click("#accept")
        elif isinstance(pilot.app.screen, WorklistScreen):
            await pilot.pause(0.1)
            return
    raise AssertionError(f"login did not reach the worklist: {pilot.app.screen}")


async def open_first_step(pilot, app, clock, user):
    """Log in and open the first step of the first batch (Enter on the batch, Enter on the step)."""
    await login(pilot, clock, user)
    await pilot.press("enter")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, StepScreen), "the step screen")
    return app.screen


def ana_performs_line_clearance(kiosk, clock, secret):
    """Ana signs Performed on PB-2026-001's line clearance through the services (no screen), then logs out."""
    clock.advance(31)
    assert kiosk.session.login("ana.op", DEMO_PASSWORD, pyotp.TOTP(secret).at(clock.now())).ok
    if not kiosk.auth.user("ana.op").first_use_accepted:
        kiosk.auth.accept_first_use(kiosk.auth.user("ana.op"))
    clock.advance(31)
    kiosk.signing.sign(kiosk.signing.prepare("PB-2026-001", "line-clearance", "Performed", {"area_clear": "yes"}),
                       DEMO_PASSWORD, "ana.op", pyotp.TOTP(secret).at(clock.now()))
    kiosk.session.logout()


async def open_supervisor(pilot, app, clock, user):
    """Log in and open the supervisor screen (F3)."""
    from screens.supervisor import SupervisorScreen

    await login(pilot, clock, user)
    await pilot.press("f3")
    await wait_for(pilot, lambda: isinstance(app.screen, SupervisorScreen), "the supervisor screen")
    return app.screen


async def enter_credentials(pilot, clock, user_id, password, secret):
    """Type user id, password and the current one-time code into a credentials form, then Enter."""
    clock.advance(31)
    await type_text(pilot, user_id)
    await pilot.press("tab")
    await type_text(pilot, password)
    await pilot.press("tab")
    await type_text(pilot, pyotp.TOTP(secret).at(clock.now()))
    await pilot.press("enter")


async def wait_for(pilot, predicate, what):
    for _ in range(100):
        await pilot.pause(0.05)
        if predicate():
            await pilot.pause(0.1)  # let the new screen finish mounting and take focus
            return
    raise AssertionError(f"timed out waiting for {what}")


# -- the demo kiosk, reproducibly ------------------------------------------------------

CHEAP = dict(time_cost=1, memory_kib=1024, parallelism=1)


def fixed_identity(data_dir, device_id: str, seed: int) -> None:
    """Put a device key made from a fixed seed where the kiosk looks for it, so fingerprints
    (and snapshots of screens that show them) are the same on every run. The files have the
    modes a real kiosk requires (0700 directory, 0600 key)."""
    import json
    import os
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from kiosk.domain.keys import kid_of

    data_dir = Path(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fd = os.open(data_dir / "device.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    (data_dir / "device.json").write_text(json.dumps({"device_id": device_id, "epoch": 1, "kid": kid_of(raw)}))


def make_demo(tmp_path, clock, *, seed: int = 7):
    """The demo kiosk (real services) with a fixed device key; every demo user has accepted the
    e-signature statement already, so a login goes straight to the worklist."""
    from kiosk.demo import create_demo
    from kiosk.domain.passwords import PasswordHasher

    data = tmp_path / "demo"
    fixed_identity(data, "demo-kiosk", seed)
    kiosk, users = create_demo(data, clock, hasher=PasswordHasher(**CHEAP))
    for u in users:
        kiosk.auth.accept_first_use(kiosk.auth.user(u.user_id))
    return kiosk, {u.user_id: u for u in users}


def screen_text(app) -> str:
    """Everything on the terminal now, as plain text (what a person would read)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
