"""Ed25519 device and central keys, key ids and fingerprints.

The key id is short enough to sit in every record; the fingerprint is the
full SHA-256 an admin reads aloud when approving a device, in groups of four.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

RECORD_SIG_PREFIX = b"kiosk-record-v1\x00"
# Detached statements (central receipts) get their own domain, so no statement can pass for a record.
STATEMENT_SIG_PREFIX = b"kiosk-statement-v1\x00"


class KeyError_(ValueError):
    """A key's bytes are not a usable Ed25519 key."""


def kid_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def fingerprint_of(public_raw: bytes) -> str:
    digest = hashlib.sha256(public_raw).hexdigest()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise ValueError("base64url text must be a string without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, eq=True)
class PublicKey:
    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise KeyError_("an Ed25519 public key is 32 bytes")

    @functools.cached_property
    def kid(self) -> str:  # cached: ingest compares it once per record
        return kid_of(self.raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.raw)

    @functools.cached_property
    def _verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def verify_record_hash(self, record_hash: bytes, sig: bytes) -> bool:
        try:
            self._verifier.verify(sig, RECORD_SIG_PREFIX + record_hash)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify_statement(self, statement: bytes, sig: bytes) -> bool:
        try:
            self._verifier.verify(sig, STATEMENT_SIG_PREFIX + statement)
        except (InvalidSignature, ValueError):
            return False
        return True


class SigningKey:
    """A private Ed25519 key; never printed, never serialised except to its 0600 file."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = PublicKey(
            private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )
        # One verifier object per key keeps batch verification cheap.
        self._public_obj = private.public_key()

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> "SigningKey":
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise KeyError_("the key file does not hold an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyError_("the key file does not hold an Ed25519 key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def kid(self) -> str:
        return self.public.kid

    def sign_record_hash(self, record_hash: bytes) -> bytes:
        return self._private.sign(RECORD_SIG_PREFIX + record_hash)

    def sign_statement(self, statement: bytes) -> bytes:
        return self._private.sign(STATEMENT_SIG_PREFIX + statement)

    def __repr__(self) -> str:  # never leak key material through repr/logging
        return f"SigningKey(kid={self.kid})"
