"""Who can be named: user ids, printed names, reasons, roles and statuses.

A user id identifies one person forever (11.300(a), 11.100(a)): ids are
compared after NFKC and case folding, so 'Jane.Op' and 'ＪＡＮＥ.ＯＰ' are the same
id and cannot be issued twice. Free text that ends up on screens, printouts
and audit trails is refused when it carries control characters or markup,
because it would render differently from what was typed.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}\Z")
_MARKUP = ("[", "]", "<", ">")


class InvalidUserId(ValueError):
    pass


class InvalidText(ValueError):
    pass


class Role(str, enum.Enum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    QA = "qa"
    ADMIN = "admin"


class UserStatus(str, enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class User:
    user_id: str
    printed_name: str
    roles: frozenset[Role]
    status: UserStatus = UserStatus.ACTIVE
    badge_id: str | None = None


def normalize_user_id(text: str) -> str:
    """NFKC + case fold; 2–64 of letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not isinstance(text, str):
        raise InvalidUserId("a user id must be text")
    uid = unicodedata.normalize("NFKC", text).strip().casefold()
    uid = unicodedata.normalize("NFKC", uid)
    if not uid:
        raise InvalidUserId("enter a user id")
    if len(uid) > 64:
        raise InvalidUserId("a user id is at most 64 characters")
    if not _ID_RE.match(uid):
        raise InvalidUserId(
            "a user id is 2-64 characters: letters a-z, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return uid


def _bad_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or ch in _MARKUP


def check_text(field_name: str, text: str, max_len: int = 120) -> str:
    """A printed name, reason or note: NFC, trimmed, not empty, no control characters or markup."""
    if not isinstance(text, str):
        raise InvalidText(f"{field_name} must be text")
    cleaned = unicodedata.normalize("NFC", text).strip()
    if not cleaned:
        raise InvalidText(f"{field_name} cannot be empty")
    if len(cleaned) > max_len:
        raise InvalidText(f"{field_name} is at most {max_len} characters (got {len(cleaned)})")
    bad = next((ch for ch in cleaned if _bad_char(ch)), None)
    if bad is not None:
        shown = bad if bad in _MARKUP else f"U+{ord(bad):04X}"
        raise InvalidText(f"{field_name} contains a character that is not allowed ({shown}); "
                          "control characters and markup brackets [ ] < > are refused")
    return cleaned
