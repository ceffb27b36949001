"""Password rules (NIST SP 800-63B-4) and argon2id hashing.

Length and a blocklist protect better than composition rules, which push
people to predictable patterns; so there are none. Hash parameters come from
site config and must be the same on every kiosk, or each kiosk would rehash
the others' hashes on every login (see NOTES: argon2 check_needs_rehash).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordRejected(ValueError):
    """A new password does not meet the policy; the message says which rule, never the password."""


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 12
    min_length_with_totp: int = 8
    max_length: int = 128
    history: int = 5
    max_age_days: int = 0

    def __post_init__(self) -> None:
        if self.max_length < 64:
            raise ValueError("password.max_length must allow at least 64 characters (NIST SP 800-63B-4)")


def normalize_password(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


class Blocklist:
    def __init__(self, lines: Iterable[str]) -> None:
        self._items = frozenset(
            normalize_password(line.strip()).casefold() for line in lines if line.strip() and not line.startswith("#")
        )

    def __contains__(self, password: str) -> bool:
        return normalize_password(password).casefold() in self._items

    def __len__(self) -> int:
        return len(self._items)


def check_new_password(password: str, *, policy: PasswordPolicy, user_id: str, printed_name: str,
                       blocklist: Blocklist, totp_enrolled: bool) -> str:
    """Return the normalised password or raise PasswordRejected."""
    pw = normalize_password(password)
    minimum = policy.min_length_with_totp if totp_enrolled else policy.min_length
    if not pw.strip():
        raise PasswordRejected("the password cannot be only spaces")
    if len(pw) < minimum:
        raise PasswordRejected(f"use at least {minimum} characters (a few words make a strong password)")
    if len(pw) > policy.max_length:
        raise PasswordRejected(f"use at most {policy.max_length} characters")
    if pw in blocklist:
        raise PasswordRejected("that password is on the list of common or breached passwords; choose another")
    folded = pw.casefold()
    parts = [user_id.casefold()] + [p.casefold() for p in printed_name.replace("-", " ").split() if len(p) >= 3]
    if any(part and part in folded for part in parts):
        raise PasswordRejected("the password must not contain your user id or your name")
    return pw


class PasswordHasher:
    """argon2id with site-wide parameters; counts verifies so tests can prove equal work."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._ph = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
                                         type=argon2.Type.ID)
        self._dummy = self._ph.hash("dummy password for unknown users")
        self.calls = 0

    def hash(self, password: str) -> str:
        return self._ph.hash(normalize_password(password))

    def verify(self, stored: str, password: str) -> bool:
        self.calls += 1
        try:
            return self._ph.verify(stored, normalize_password(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        """The same work as a real verify, for a user id that does not exist."""
        self.verify(self._dummy, password)

    def needs_rehash(self, stored: str) -> bool:
        return self._ph.check_needs_rehash(stored)

    def __repr__(self) -> str:
        return "PasswordHasher(argon2id)"
