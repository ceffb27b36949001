"""Services over a real local store in a temp dir, cheap argon2 parameters, FakeClock."""

import pytest

from kiosk.app import build_kiosk
from kiosk.config import KioskConfig
from kiosk.domain.passwords import PasswordHasher
from kiosk.services.auth import Actor

CHEAP = dict(time_cost=1, memory_kib=1024, parallelism=1)


@pytest.fixture
def config():
    return KioskConfig()


@pytest.fixture
def kiosk(tmp_path, clock, config):
    k = build_kiosk(config, tmp_path / "data", clock, device_id="line-1", hasher=PasswordHasher(**CHEAP))
    yield k
    k.close()


@pytest.fixture
def admin(kiosk):
    issued = kiosk.auth.bootstrap("site.admin", "Ada Admin")
    return Actor("site.admin", "Ada Admin", "admin"), issued


def totp_now(secret, clock):
    import pyotp

    return pyotp.TOTP(secret).at(clock.now())
