"""Canonical JSON: RFC 8785 (JCS) with a restricted profile.

The bytes that are signed are the bytes that are stored. Floats are refused
outright (decimals travel as strings), so canonical form never depends on
float formatting and any JCS implementation reproduces our bytes exactly.
Strings must already be NFC, so two visually equal texts cannot hash
differently. Duplicate keys are refused on read because JSON parsers
disagree on which one wins.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import orjson
import rfc8785

MAX_RECORD_BYTES = 256 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SORT_KEYS = orjson.OPT_SORT_KEYS
MAX_DEPTH = 32


class CanonicalError(ValueError):
    """The value or bytes are outside the restricted canonical JSON profile."""


def _check(value: Any, path: str, depth: int) -> bool:
    """Validate ``value`` against the profile; True when a key needs UTF-16 ordering."""
    if depth > MAX_DEPTH:
        raise CanonicalError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if not unicodedata.is_normalized("NFC", value):
            raise CanonicalError(f"{path}: string is not in Unicode NFC form")
        if _SURROGATE.search(value):
            raise CanonicalError(f"{path}: string holds a lone surrogate (not valid Unicode)")
        return False
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise CanonicalError(f"{path}: integer {value} is outside the I-JSON range; use a string")
        return False
    if isinstance(value, float):
        raise CanonicalError(f"{path}: floats are not allowed; write decimals as strings")
    if isinstance(value, (list, tuple)):
        astral = False
        for i, item in enumerate(value):
            astral |= _check(item, f"{path}[{i}]", depth + 1)
        return astral
    if isinstance(value, dict):
        astral = False
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{path}: object key {key!r} is not a string")
            _check(key, f"{path} key {key!r}", depth + 1)
            astral |= _ASTRAL.search(key) is not None
            astral |= _check(item, f"{path}.{key}", depth + 1)
        return astral
    raise CanonicalError(f"{path}: {type(value).__name__} cannot be encoded as JSON")


class _Refer(Exception):
    """Internal: the fast check met something it does not decide; the full check runs instead."""


_MAX_INT = 2**53 - 1
_is_nfc = unicodedata.is_normalized


def _fast_check(value: Any, depth: int) -> bool:
    """The profile check on the signing path: exact types only, no error paths built.

    It accepts only what ``_check`` accepts and returns the same flag; anything
    unusual (subclasses, any violation) is referred to ``_check``, which then
    raises with the path of the offending value.
    """
    if depth > MAX_DEPTH:
        raise _Refer
    kind = type(value)
    if kind is str:
        if not value.isascii() and (not _is_nfc("NFC", value) or _SURROGATE.search(value)):
            raise _Refer
        return False
    if kind is dict:
        astral = False
        for key, item in value.items():
            if type(key) is not str:
                raise _Refer
            if not key.isascii():
                if not _is_nfc("NFC", key) or _SURROGATE.search(key) or depth + 1 > MAX_DEPTH:
                    raise _Refer
                astral |= _ASTRAL.search(key) is not None
            kind = type(item)
            if kind is str:
                if depth + 1 > MAX_DEPTH or (not item.isascii() and (not _is_nfc("NFC", item) or _SURROGATE.search(item))):
                    raise _Refer
            elif item is None or kind is bool:
                if depth + 1 > MAX_DEPTH:
                    raise _Refer
            else:
                astral |= _fast_check(item, depth + 1)
        return astral
    if kind is list or kind is tuple:
        astral = False
        for item in value:
            astral |= _fast_check(item, depth + 1)
        return astral
    if value is None or kind is bool:
        return False
    if kind is int:
        if -_MAX_INT <= value <= _MAX_INT:
            return False
        raise _Refer
    raise _Refer


def _profile_check(value: Any) -> bool:
    try:
        return _fast_check(value, 0)
    except _Refer:
        return _check(value, "$", 0)


def encode(value: Any) -> bytes:
    """The canonical bytes of ``value`` (raises CanonicalError outside the profile).

    Inside the profile (no floats, integers within I-JSON, no lone
    surrogates) orjson's compact, key-sorted UTF-8 output is byte-identical
    to RFC 8785, except for key order when a key holds a character beyond
    the BMP (JCS sorts by UTF-16 code units); those rare objects go through
    ``rfc8785``. The equivalence is property-tested against ``rfc8785``.
    orjson rather than the standard library because ingest and verify
    re-encode every record, and it does so in a tenth of the time.
    """
    if _profile_check(value):
        try:
            return rfc8785.dumps(value)
        except rfc8785.CanonicalizationError as exc:  # pragma: no cover - _check covers the cases
            raise CanonicalError(str(exc)) from exc
    try:
        return orjson.dumps(value, option=_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # pragma: no cover - the profile check refuses what orjson would
        raise CanonicalError(str(exc)) from None


def reference_encode(value: Any) -> bytes:
    """RFC 8785 by the reference library, for tests and independent checks."""
    _check(value, "$", 0)
    return rfc8785.dumps(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise CanonicalError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_float(text: str) -> Any:
    raise CanonicalError(f"float {text} is not allowed; write decimals as strings")


def _no_constant(text: str) -> Any:
    raise CanonicalError(f"{text} is not valid JSON")


def decode(data: bytes, *, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """Parse bytes that must already be canonical; anything else raises CanonicalError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CanonicalError("canonical JSON must be bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise CanonicalError(f"{len(data)} bytes is over the {max_bytes}-byte limit")
    value = _decode_plain(data)
    if value is not _NOT_PLAIN:
        return value
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise CanonicalError(f"not valid UTF-8 at byte {exc.start}") from None
    return _decode_full(text, data)


def _decode_full(text: str, data: bytes) -> Any:
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise CanonicalError(f"nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"not valid JSON: {exc.msg} at position {exc.pos}") from None
    if encode(value) != data:
        raise CanonicalError("bytes are valid JSON but not in canonical (RFC 8785) form")
    return value


_NOT_PLAIN = object()


_PLAIN_DEPTH = MAX_DEPTH  # items of a container this deep are past the limit: the full path decides


def _plain(value: Any, depth: int = 0) -> bool:
    """No floats, no integer outside I-JSON (what orjson parses but the profile refuses), and no
    container nested ``_PLAIN_DEPTH`` deep; each of these goes to the full path, which names the fault."""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    elif kind is int:
        return -_MAX_INT <= value <= _MAX_INT
    else:
        return kind is not float
    if depth >= _PLAIN_DEPTH:
        return False
    for item in items:
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:  # checked here, not by a call per integer (seq and v are in every record)
            if -_MAX_INT <= item <= _MAX_INT:
                continue
            return False
        if not _plain(item, depth + 1):
            return False
    return True


def _decode_plain(data: bytes) -> Any:
    """Fast path for the common record: ASCII only, nested less than MAX_DEPTH deep.

    Ingest and verify are bound by this and Ed25519, so it matters. It
    returns a value only when re-encoding reproduces ``data`` exactly, and
    that alone proves the value is inside the profile: an ASCII output means
    every string is ASCII (so NFC, no surrogates, no astral keys); equal bytes
    means no duplicate key was collapsed and no number was written in another
    form; ``_plain`` refuses floats, out-of-range integers and deep nesting.
    Anything else (including every error, and anything nested past orjson's
    own limit) goes through the full path, which names the fault.
    """
    if not data.isascii():
        return _NOT_PLAIN
    try:
        value = orjson.loads(data)
        if not _plain(value):
            return _NOT_PLAIN
        again = orjson.dumps(value, option=_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return _NOT_PLAIN
    return value if again == data else _NOT_PLAIN
