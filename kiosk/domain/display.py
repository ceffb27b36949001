"""Text from records and rows made safe to show on a terminal, screen or command line alike.

A chain name, a reason or a message may come from a row anyone with inbox
access wrote: shown raw, an ANSI escape in it could rewrite what an admin
sees, and a bidi override could reorder it. Every control, format and
unassigned character is shown as a visible ``\\x..`` escape instead.
"""

from __future__ import annotations

import unicodedata

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_str(value: object) -> str:
    """``value`` as a string with every control/format character made visible."""
    text = "" if value is None else str(value)
    return "".join(
        _escape_char(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in text
    )


def recordable(text: object, limit: int = 2000) -> str:
    """Text from outside (a row's reason, an error message) as a record body may carry it: made safe as above,
    in NFC and clipped. A lone surrogate or a string not in NFC would make the record fail to seal, and an
    alert that keeps failing to seal is an alert nobody ever sees."""
    return unicodedata.normalize("NFC", safe_str(text))[:limit]
