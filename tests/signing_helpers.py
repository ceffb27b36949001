"""A demo terminal with an operator signing real batch-record steps through the services.

Used where a reliability test needs genuine ``step.signed`` records (rules,
argon2 check, manifestation, content hash), not only cheap filler records.
"""

from __future__ import annotations

from pathlib import Path

import pyotp

from kiosk.demo import DEMO_PASSWORD, create_demo
from kiosk.domain.clock import FakeClock
from kiosk.domain.passwords import PasswordHasher

CHEAP = dict(time_cost=1, memory_kib=1024, parallelism=1)


class Operator:
    """Ana, logged in on one demo terminal, signing the first step of one new batch per signature."""

    def __init__(self, data_dir: Path, clock: FakeClock, device_id: str) -> None:
        self.clock = clock
        self.kiosk, users = create_demo(data_dir, clock, hasher=PasswordHasher(**CHEAP), device_id=device_id)
        self.secret = next(u.totp_secret for u in users if u.user_id == "ana.op")
        self.kiosk.auth.accept_first_use(self.kiosk.auth.user("ana.op"))
        self.clock.advance(31)
        outcome = self.kiosk.session.login("ana.op", DEMO_PASSWORD, self._code())
        assert outcome.ok, outcome.message
        self.signed = 0

    def _code(self) -> str:
        return pyotp.TOTP(self.secret).at(self.clock.now())

    def sign_next(self) -> dict:
        """Start a batch and sign its line clearance; returns the signature as the service reported it."""
        self.signed += 1
        batch_id = f"B-{self.kiosk.store.chain.split(':')[0]}-{self.signed:05d}"
        self.kiosk.session.activity()
        self.kiosk.signing.create_batch(batch_id, "buffer-prep@4")
        prepared = self.kiosk.signing.prepare(batch_id, "line-clearance", "Performed", {"area_clear": "yes"})
        totp = None
        if "totp" in prepared.components:
            self.clock.advance(31)
            totp = self._code()
        return self.kiosk.signing.sign(prepared, DEMO_PASSWORD, "ana.op", totp)

    def close(self) -> None:
        self.kiosk.close()
