"""The record: the unit of truth, stored as the exact bytes that were signed.

A record names its chain (device and key epoch), its place in it (seq, prev)
and its signer (kid). ``hash = SHA-256(bytes)`` links the chain and
``sig = Ed25519(key, prefix + hash)`` makes every byte attributable to a device.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kiosk.domain import canonical
from kiosk.domain.clock import format_ts, parse_ts
from kiosk.domain.keys import PublicKey, SigningKey, b64url, unb64url

VERSION = 1
GENESIS_PREV = "0" * 64
FIELDS = ("v", "chain", "seq", "prev", "id", "type", "ts", "tz", "kid", "body")

_CHAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}:[1-9][0-9]{0,8}\Z")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}\Z")
_KID_RE = re.compile(r"^[0-9a-f]{16}\Z")
_TYPE_RE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*\Z")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")


class RecordError(ValueError):
    """A record is not what it claims to be. ``where`` names the record."""

    reason = "invalid record"

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        self.detail = detail
        super().__init__(f"{where}: {detail}")


class MalformedRecord(RecordError):
    reason = "malformed"


class NotCanonical(RecordError):
    reason = "not canonical"


class BadSignature(RecordError):
    reason = "bad signature"


class BrokenLink(RecordError):
    """seq or prev does not continue the chain (deleted, inserted, reordered record)."""

    reason = "broken chain"


class UnknownKey(RecordError):
    reason = "unknown key"


def new_uuid7(moment: dt.datetime, random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """RFC 9562 UUIDv7 from an injected time, so ids sort like the records they name."""
    ms = int(moment.timestamp() * 1000) & ((1 << 48) - 1)
    b = bytearray(ms.to_bytes(6, "big") + random_bytes(10))
    b[6] = 0x70 | (b[6] & 0x0F)   # version 7, then 12 random bits
    b[8] = 0x80 | (b[8] & 0x3F)   # the RFC variant, then 62 random bits
    h = b.hex()  # str(uuid.UUID(bytes=b)), without building the object (once per record)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def chain_id(device_id: str, epoch: int) -> str:
    chain = f"{device_id}:{epoch}"
    if not _CHAIN_RE.match(chain):
        raise ValueError(
            f"device id {device_id!r} must be 1-63 letters, digits, '.', '_' or '-', "
            "and the epoch a positive integer"
        )
    return chain


def split_chain(chain: str) -> tuple[str, int]:
    device, _, epoch = chain.rpartition(":")
    return device, int(epoch)


@dataclass(frozen=True)
class Record:
    chain: str
    seq: int
    prev: str
    id: str
    type: str
    ts: str
    tz: str
    kid: str
    body: Mapping[str, Any] = field(default_factory=dict)
    v: int = VERSION

    def to_obj(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "chain": self.chain,
            "seq": self.seq,
            "prev": self.prev,
            "id": self.id,
            "type": self.type,
            "ts": self.ts,
            "tz": self.tz,
            "kid": self.kid,
            "body": dict(self.body),
        }

    @property
    def time(self) -> dt.datetime:
        return parse_ts(self.ts)

    @property
    def device_id(self) -> str:
        return split_chain(self.chain)[0]

    @classmethod
    def from_obj(cls, obj: Any, where: str) -> "Record":
        if not isinstance(obj, dict):
            raise MalformedRecord(where, "a record must be a JSON object")
        keys = obj.keys()
        if keys != _FIELD_SET:
            missing = sorted(_FIELD_SET - keys)
            extra = sorted(keys - _FIELD_SET)
            raise MalformedRecord(where, f"fields wrong (missing {missing}, unexpected {extra})")
        if obj["v"] != VERSION or type(obj["v"]) is not int:  # true == 1 in Python, not in the format
            raise MalformedRecord(where, f"record version {obj['v']!r} is not supported")
        _check_place(obj, where)
        if not isinstance(obj["id"], str) or not _UUID_RE.match(obj["id"]):
            raise MalformedRecord(where, "id must be a lowercase UUIDv7")
        try:
            parse_ts(obj["ts"])
        except ValueError as exc:
            raise MalformedRecord(where, str(exc)) from None
        if not isinstance(obj["body"], dict):
            raise MalformedRecord(where, "body must be a JSON object")
        # Every field is checked and the keys are exactly the fields: the frozen instance is filled in one step,
        # not by __init__'s ten object.__setattr__ calls (ingest and verify build one per record; it halves this).
        record = object.__new__(cls)
        record.__dict__.update(obj)
        return record


_FIELD_SET = frozenset(FIELDS)
_CHECKED_HEADERS: set[tuple[str, str, str, str]] = set()


def _check_place(obj: Mapping[str, Any], where: str) -> None:
    """The fields that say whose record this is and where it belongs: chain, type, tz, kid, seq, prev."""
    # chain, type, tz and kid repeat from record to record: each distinct combination is checked once.
    header = (obj["chain"], obj["type"], obj["tz"], obj["kid"])
    try:
        known = header in _CHECKED_HEADERS
    except TypeError:  # a list or an object where a string belongs
        known = False
    if not known:
        _check_header(*header, where)
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise MalformedRecord(where, "seq must be a positive integer")
    if not isinstance(obj["prev"], str) or not _HEX64_RE.match(obj["prev"]):
        raise MalformedRecord(where, "prev must be 64 lowercase hex characters")


def _check_header(chain: Any, type_: Any, tz: Any, kid: Any, where: str) -> None:
    """The header fields that repeat between records; a combination that passes is remembered."""
    if not isinstance(chain, str) or not _CHAIN_RE.match(chain):
        raise MalformedRecord(where, "chain must be '<device-id>:<epoch>'")
    if not isinstance(type_, str) or not _TYPE_RE.match(type_) or len(type_) > 64:
        raise MalformedRecord(where, "type must be dotted lowercase words, e.g. 'step.signed'")
    if not isinstance(tz, str) or not tz or len(tz) > 64:
        raise MalformedRecord(where, "tz must be an IANA zone name")
    if not isinstance(kid, str) or not _KID_RE.match(kid):
        raise MalformedRecord(where, "kid must be 16 lowercase hex characters")
    if len(_CHECKED_HEADERS) >= 4096:
        _CHECKED_HEADERS.clear()
    _CHECKED_HEADERS.add((chain, type_, tz, kid))


@dataclass(frozen=True)
class SignedRecord:
    """A record with the exact bytes that were signed, their hash and signature."""

    record: Record
    raw: bytes
    hash: bytes
    sig: bytes

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()

    def to_line(self) -> str:
        """The stable exchange form: ``{"r": record, "s": base64url(sig)}``."""
        return '{"r":' + self.raw.decode("utf-8") + ',"s":"' + b64url(self.sig) + '"}'


def where_of(chain: str | None, seq: int | None) -> str:
    if chain is None:
        return "record"
    return f"record {chain} #{seq}"


def seal(
    key: SigningKey,
    *,
    chain: str,
    seq: int,
    prev: str,
    type: str,
    moment: dt.datetime,
    zone: str,
    body: Mapping[str, Any],
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> SignedRecord:
    """Build, canonicalise and sign one record.

    Nothing is signed that a reader would refuse. The id and the time are
    made here in their only valid form; every other field is checked as
    ``Record.from_obj`` checks it, and the whole record, body included, must
    be inside the canonical profile (which is what a reader's parse checks).
    """
    where = where_of(chain, seq)
    if not isinstance(body, Mapping):
        raise MalformedRecord(where, "body must be a JSON object")
    obj = {"v": VERSION, "chain": chain, "seq": seq, "prev": prev, "id": new_uuid7(moment, random_bytes),
           "type": type, "ts": format_ts(moment), "tz": zone, "kid": key.kid, "body": dict(body)}
    _check_place(obj, where)
    try:
        raw = canonical.encode(obj)
    except canonical.CanonicalError as exc:
        raise MalformedRecord(where, str(exc)) from None
    if len(raw) > canonical.MAX_RECORD_BYTES:
        raise MalformedRecord(where, f"record is {len(raw)} bytes, over the {canonical.MAX_RECORD_BYTES}-byte limit")
    digest = hashlib.sha256(raw).digest()
    # The fields are exactly Record's and checked: filled in one step, as from_obj does.
    record = object.__new__(Record)
    record.__dict__.update(obj)
    return SignedRecord(record, raw, digest, key.sign_record_hash(digest))


def parse_raw(raw: bytes, where: str = "record") -> tuple[Record, bytes]:
    """Check that ``raw`` is a canonical, well-formed record; return it and its hash."""
    try:
        obj = canonical.decode(raw)
    except canonical.CanonicalError as exc:
        raise NotCanonical(where, str(exc)) from None
    if where == "record" and isinstance(obj, dict) and isinstance(obj.get("chain"), str) and isinstance(obj.get("seq"), int):
        where = where_of(obj["chain"], obj["seq"])
    return Record.from_obj(obj, where), hashlib.sha256(raw).digest()


def open_signed(raw: bytes, sig: bytes, key: PublicKey | None, where: str = "record") -> SignedRecord:
    """Parse and verify one record against the key that should have signed it."""
    record, digest = parse_raw(raw, where)
    return check_signature(record, raw, digest, sig, key)


SignatureCheck = Callable[[PublicKey, bytes, bytes], bool]
"""``(key, record hash, signature) -> valid``: the answer ``PublicKey.verify_record_hash`` gives,
perhaps worked out beforehand (central ingest verifies a batch's signatures in one tight loop)."""


def check_signature(
    record: Record, raw: bytes, digest: bytes, sig: bytes, key: PublicKey | None, where: str | None = None,
    verify: SignatureCheck | None = None,
) -> SignedRecord:
    """Verify an already parsed record's signature (lets a verifier parse only once)."""
    where = where or where_of(record.chain, record.seq)
    if key is None:
        raise UnknownKey(where, f"key {record.kid} is not enrolled")
    if record.kid != key.kid:
        raise UnknownKey(where, f"signed by key {record.kid}, but the chain's key is {key.kid}")
    if len(sig) != 64 or not (key.verify_record_hash(digest, sig) if verify is None else verify(key, digest, sig)):
        raise BadSignature(where, "Ed25519 signature does not match the record bytes")
    # Filled in one step, as Record.from_obj does: ingest and verify make one per record (half the cost).
    signed = object.__new__(SignedRecord)
    signed.__dict__.update(record=record, raw=bytes(raw), hash=digest, sig=bytes(sig))
    return signed


def parse_line(line: str | bytes, where: str = "line") -> tuple[bytes, bytes]:
    """Split a record line into the record's canonical bytes and its signature."""
    # A record is at most MAX_RECORD_BYTES; its line adds the wrapper and the signature. A longer line
    # is refused before it is parsed, so a huge line costs no memory or time.
    if len(line) > 2 * canonical.MAX_RECORD_BYTES:
        raise NotCanonical(where, f"line is {len(line)} long, over the {canonical.MAX_RECORD_BYTES}-byte record limit")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise NotCanonical(where, "line is not valid UTF-8") from None
    try:
        obj = json.loads(line, object_pairs_hook=canonical._no_duplicates,
                         parse_float=canonical._no_float, parse_constant=canonical._no_constant)
    except (json.JSONDecodeError, canonical.CanonicalError, RecursionError) as exc:
        raise NotCanonical(where, f"line is not a record line: {exc}") from None
    if not isinstance(obj, dict) or set(obj) != {"r", "s"} or not isinstance(obj["s"], str):
        raise MalformedRecord(where, 'a record line is {"r": <record>, "s": "<base64url signature>"}')
    try:
        raw = canonical.encode(obj["r"])
        sig = unb64url(obj["s"])
    except (canonical.CanonicalError, ValueError) as exc:
        raise NotCanonical(where, str(exc)) from None
    return raw, sig
