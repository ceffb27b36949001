"""Time-based one-time codes (RFC 6238) that can be used once, and secrets sealed at rest.

pyotp verifies statelessly, so the same code would pass twice within its
window; we return the matched time step and the caller stores it, refusing any
step not newer than the last accepted one, in the same transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import os
from typing import Callable

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

STEP_S = 30
WINDOW = 1
_PREFIX = "v1."


class SecretBoxError(ValueError):
    """A sealed secret cannot be opened (wrong key, or moved to another user)."""


def new_secret(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    return base64.b32encode(random_bytes(20)).decode("ascii")


def provisioning_uri(secret: str, user_id: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user_id, issuer_name=issuer)


def verify_totp(secret: str, code: str, now: dt.datetime, last_step: int) -> int | None:
    """The time step the code matches (±1 step), if newer than ``last_step``; else None."""
    if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_S
    for step in range(current - WINDOW, current + WINDOW + 1):
        if step > last_step and pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None


class SecretBox:
    """The site key's two uses: secrets sealed with AES-256-GCM, the owner as associated data (a sealed
    secret cannot be moved to another user); and fingerprints of identities that match no account."""

    def __init__(self, key: bytes, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        if len(key) != 32:
            raise ValueError("a SecretBox key is 32 bytes")
        self._aead = AESGCM(key)
        self._random = random_bytes
        # A key of its own for fingerprints, so that no output of one use of the site key helps with the other.
        self._mac_key = HKDF(SHA256(), 32, salt=None, info=b"kiosk unknown-identity fingerprint v1").derive(key)

    def encrypt(self, owner: str, secret: str) -> str:
        nonce = self._random(12)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), owner.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")

    def decrypt(self, owner: str, token: str) -> str:
        if not isinstance(token, str) or not token.startswith(_PREFIX):
            raise SecretBoxError("not a sealed secret of a known version")
        try:
            raw = base64.urlsafe_b64decode(token[len(_PREFIX):] + "=" * (-len(token) % 4))
            return self._aead.decrypt(raw[:12], raw[12:], owner.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError):
            raise SecretBoxError("the sealed secret does not open with this site key for this user") from None

    def fingerprint(self, kind: str, text: str) -> str:
        """What the audit trail says about an identity that matches no account: a keyed hash, never the text.

        People type their password into the user ID field, and the trail is
        permanent and synced: a failed sign-in with an unknown id must not
        write the text down. The same text gives the same fingerprint on every
        terminal of the site (they share the site key), so repeated attempts
        can be linked, and an investigator with the site key can test a
        candidate id (``kiosk admin site-key fingerprint``); without the key,
        the fingerprint cannot be tested against a list of guesses.
        """
        mac = hmac.digest(self._mac_key, f"{kind}\x00{text}".encode("utf-8"), "sha256")
        return f"unknown-{kind}:{mac[:8].hex()}"

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"
