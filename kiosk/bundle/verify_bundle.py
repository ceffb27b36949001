#!/usr/bin/env python3
"""Verify a signing-kiosk inspector bundle offline.

Needs only Python 3.11+ and the `cryptography` package. Usage:

    python verify_bundle.py BUNDLE.zip [--central-key "FINGERPRINT"]   (or a folder the zip was extracted to)

Checks, for every chain in the bundle: each file's SHA-256 against
MANIFEST.json; each record's bytes are canonical JSON (RFC 8785) and carry an
Ed25519 signature by the device key listed in devices.json; seq runs 1, 2, 3…
without gaps and each `prev` is the SHA-256 of the record before; every
checkpoint's Merkle root (RFC 9162) matches the records before it; and the
chain is at least as long as the head the central store anchored (anchors.json),
so a removed tail is detected, and every chain anchored there is in the bundle,
so a removed chain is detected. A bundle from the central store holds its own
chain: every device chain must be at least as long as the central store's last
signed directory publication counts it (anchors.json is not signed; that
record is), and every device chain must match, record for record, the receipt
the central store signed for it (its last seq and that record's hash), so a
chain rewritten under another key is detected. The central key's fingerprint
is printed for comparison with the one the site holds; `--central-key` makes
that comparison part of the check. Exit code 0: all verified; 1: a check failed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import unicodedata
import zipfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PREFIX = b"kiosk-record-v1\x00"
STATEMENT_PREFIX = b"kiosk-statement-v1\x00"
ZERO = "0" * 64


class Failed(Exception):
    pass


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _no_dup(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise Failed(f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _no_float(text):
    raise Failed(f"float {text} is not allowed in a record")


def jcs(value) -> bytes:
    """RFC 8785 canonical form for records (no floats: the kiosk never writes them)."""
    def enc(v):
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            if not unicodedata.is_normalized("NFC", v):
                raise Failed("a string is not in Unicode NFC form")
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ",".join(enc(x) for x in v) + "]"
        if isinstance(v, dict):
            keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + enc(v[k]) for k in keys) + "}"
        raise Failed(f"unexpected JSON value {type(v).__name__}")
    try:
        return enc(value).encode("utf-8")
    except UnicodeEncodeError:
        raise Failed("a string holds a lone surrogate (not valid Unicode)") from None


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    def __init__(self):
        self.stack, self.size = [], 0

    def add(self, data):
        height, digest = 0, leaf(data)
        while self.stack and self.stack[-1][0] == height:
            digest = node(self.stack.pop()[1], digest)
            height += 1
        self.stack.append((height, digest))
        self.size += 1

    def root(self):
        if not self.stack:
            return hashlib.sha256(b"").digest()
        digest = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            digest = node(left, digest)
        return digest


class Source:
    def __init__(self, path: Path):
        self.zip = zipfile.ZipFile(path) if path.is_file() else None
        self.dir = None if self.zip else path

    def names(self):
        if self.zip:
            return set(self.zip.namelist())
        return {str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.is_file()}

    def open(self, name):
        return self.zip.open(name) if self.zip else open(self.dir / name, "rb")


def sha256_of(source: Source, name: str) -> str:
    digest = hashlib.sha256()
    with source.open(name) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kid_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def fingerprint(public_raw: bytes) -> str:
    digest = hashlib.sha256(public_raw).hexdigest()
    return " ".join(digest[i:i + 4] for i in range(0, 64, 4))


def check_receipt(chain: str, receipt, central: dict) -> tuple[int, str]:
    """(seq, hash) that the central store's signed receipt vouches for in ``chain``."""
    if not isinstance(receipt, dict):
        raise Failed(f"{chain}: no receipt signed by the central store vouches for this chain: "
                     "its records cannot be told from a chain rewritten under another key")
    central_raw = b64url_decode(central["public_key"])
    statement = {"type": "sync.receipt", "chain": chain, "upto": receipt.get("upto"), "hash": receipt.get("hash"),
                 "central_ts": receipt.get("central_ts"), "kid": receipt.get("kid")}
    if receipt.get("kid") != kid_of(central_raw):
        raise Failed(f"{chain}: its receipt is signed by key {receipt.get('kid')}, not the central store's key")
    try:
        Ed25519PublicKey.from_public_bytes(central_raw).verify(
            b64url_decode(str(receipt.get("sig", ""))), STATEMENT_PREFIX + jcs(statement))
    except (InvalidSignature, ValueError):
        raise Failed(f"{chain}: its receipt does not carry a valid central signature") from None
    if not isinstance(statement["upto"], int) or not isinstance(statement["hash"], str):
        raise Failed(f"{chain}: its receipt names no record")
    return statement["upto"], statement["hash"]


def verify_chain(source: Source, name: str, device: dict, anchor: dict | None,
                 receipt: tuple[int, str] | None = None) -> tuple[int, int, tuple | None]:
    """(records, checkpoints, (seq, heads) of the chain's last directory publication, or None)."""
    chain = f"{device['device_id']}:{device['epoch']}"
    published = None
    public_raw = b64url_decode(device["public_key"])
    key = Ed25519PublicKey.from_public_bytes(public_raw)
    kid = kid_of(public_raw)
    expected_seq, prev, frontier, checkpoints = 1, ZERO, Frontier(), 0
    with source.open(name) as fh:
        for lineno, line in enumerate(io.TextIOWrapper(fh, encoding="utf-8"), start=1):
            where = f"{name} line {lineno}"
            try:
                obj = json.loads(line, object_pairs_hook=_no_dup, parse_float=_no_float)
            except Failed as exc:
                raise Failed(f"{where}: {exc}") from None
            except ValueError as exc:
                raise Failed(f"{where}: not a JSON record line ({exc})") from None
            if not isinstance(obj, dict) or set(obj) != {"r", "s"}:
                raise Failed(f'{where}: a record line is {{"r": record, "s": signature}}')
            record = obj["r"]
            try:
                raw = jcs(record)
            except Failed as exc:
                raise Failed(f"{where}: {exc}") from None
            where = f"{where} (record {record.get('chain')} #{record.get('seq')})"
            if record.get("chain") != chain:
                raise Failed(f"{where}: belongs to chain {record.get('chain')}, expected {chain}")
            if record.get("seq") != expected_seq:
                raise Failed(f"{where}: expected seq {expected_seq}: a record is missing, repeated or reordered")
            if record.get("prev") != prev:
                raise Failed(f"{where}: prev is not the hash of the record before it")
            if record.get("kid") != kid:
                raise Failed(f"{where}: signed by key {record.get('kid')}, but devices.json lists key {kid}")
            digest = hashlib.sha256(raw).digest()
            try:
                key.verify(b64url_decode(obj["s"]), PREFIX + digest)
            except (InvalidSignature, ValueError):
                raise Failed(f"{where}: the Ed25519 signature does not match the record") from None
            if expected_seq == 1 and record.get("body", {}).get("public_key") != device["public_key"]:
                raise Failed(f"{where}: the chain's own key is not the key in devices.json")
            if record.get("type") == "checkpoint":
                body = record.get("body", {})
                if body.get("size") != frontier.size or body.get("root") != frontier.root().hex():
                    raise Failed(f"{where}: checkpoint Merkle root does not match the records before it")
                checkpoints += 1
            if record.get("type") == "directory.published" and isinstance(record.get("body", {}).get("heads"), dict):
                published = (expected_seq, record["body"]["heads"])
            if receipt is not None and expected_seq == receipt[0] and digest.hex() != receipt[1]:
                raise Failed(f"{where}: differs from the record the central store's signed receipt names: "
                             "the chain was rewritten")
            frontier.add(digest)
            prev = digest.hex()
            expected_seq += 1
    count = expected_seq - 1
    if receipt is not None and receipt[0] > count:
        raise Failed(f"{name}: the central store's signed receipt vouches for seq {receipt[0]} but the file ends "
                     f"at {count}: records removed")
    if anchor:
        if anchor["seq"] > count:
            raise Failed(f"{name}: the central store anchored seq {anchor['seq']} but the file ends at {count}: records removed")
        if anchor["seq"] == count and anchor["hash"] != prev:
            raise Failed(f"{name}: the last record's hash differs from the head the central store anchored")
    return count, checkpoints, published


def verify(path: Path, central_key: str | None = None) -> list[str]:
    source = Source(path)
    names = source.names()
    for required in ("MANIFEST.json", "devices.json", "anchors.json"):
        if required not in names:
            raise Failed(f"{required} is missing from the bundle")
    with source.open("MANIFEST.json") as fh:
        manifest = json.load(fh)
    for name, digest in sorted(manifest["files"].items()):
        if name not in names:
            raise Failed(f"{name} is listed in MANIFEST.json but missing")
        if sha256_of(source, name) != digest:
            raise Failed(f"{name}: SHA-256 differs from MANIFEST.json: the file was changed")
    unlisted = {n for n in names if n.startswith("chains/")} - set(manifest["files"])
    if unlisted:
        raise Failed(f"{sorted(unlisted)[0]} is not listed in MANIFEST.json")
    with source.open("devices.json") as fh:
        devices = {f"chains/{d['device_id']}.{d['epoch']}.jsonl": d for d in json.load(fh)}
    with source.open("anchors.json") as fh:
        anchors = json.load(fh).get("chains", {})
    chain_files = sorted(n for n in manifest["files"] if n.startswith("chains/"))
    for name in chain_files:
        if name not in devices:
            raise Failed(f"{name}: no device key for this chain in devices.json")
    # The central store's key vouches for every device chain through the receipt it signed at its head.
    central_device = next((devices[n] for n in chain_files if devices[n]["device_id"] == "central"), None)
    if central_key is not None:
        if central_device is None:
            raise Failed("the bundle holds no central store chain, so nothing in it is signed by the central key "
                         "given (a terminal's own bundle, or the central chain was removed)")
        wanted = "".join(central_key.split()).lower()
        if hashlib.sha256(b64url_decode(central_device["public_key"])).hexdigest() != wanted:
            raise Failed("the bundle's central key is not the central key given: compare the fingerprints")
    lines, counts, central = [], {}, None
    for name in chain_files:
        device = devices[name]
        chain = f"{device['device_id']}:{device['epoch']}"
        receipt = None
        if central_device is not None and device is not central_device:
            receipt = check_receipt(chain, (anchors.get(chain) or {}).get("receipt"), central_device)
        count, checkpoints, published = verify_chain(source, name, device, anchors.get(chain), receipt)
        counts[chain] = count
        vouched = f", central receipt at #{receipt[0]}" if receipt else ""
        lines.append(f"OK  {chain}: {count} records, {checkpoints} checkpoints{vouched}, "
                     f"device status {device.get('status')}")
        lines.append(f"    key fingerprint {fingerprint(b64url_decode(device['public_key']))}")
        if device is central_device:
            central = (chain, device, published)
    for chain, anchor in sorted(anchors.items()):
        if anchor.get("seq", 0) > 0 and chain not in counts:
            raise Failed(f"{chain}: the central store anchored seq {anchor['seq']}, but the bundle holds no file "
                         "for this chain: a chain was removed")
    if central is not None:
        # anchors.json is not signed; the central chain is. Its last directory publication counts the records
        # it had taken in of every device chain: the bundle must hold at least those.
        chain, device, published = central
        if published is not None:
            seq, heads = published
            for other, taken in sorted(heads.items()):
                if isinstance(taken, int) and taken > counts.get(other, 0):
                    raise Failed(f"{other}: the central store's signed publication ({chain} #{seq}) counts {taken} "
                                 f"records of it, but the bundle holds {counts.get(other, 0)}: records removed")
        checked = ("it is the key given" if central_key is not None
                   else "compare it with the one the site's `kiosk central init` printed")
        lines.append(f"central key fingerprint {fingerprint(b64url_decode(device['public_key']))}: {checked}")
    else:
        lines.append("NOTE: no central store chain in this bundle: only the terminals' own keys vouch for these "
                     "records; compare each key fingerprint with the site's device registry")
    return lines


def main(argv: list[str]) -> int:
    args, central_key = list(argv[1:]), None
    if "--central-key" in args[:-1]:
        at = args.index("--central-key")
        central_key = args.pop(at + 1)
        del args[at]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    if central_key is not None and len("".join(central_key.split())) != 64:
        print("--central-key takes the central key's fingerprint: 64 hex digits (spaces between groups are fine)")
        return 2
    path = Path(args[0])
    try:
        lines = verify(path, central_key)
    except Failed as exc:
        print(f"FAILED: {exc}")
        return 1
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        print(f"FAILED: the bundle cannot be read: {exc}")
        return 1
    for line in lines:
        print(line)
    chains = sum(1 for line in lines if line.startswith("OK  "))
    vouched = any(line.startswith("central key fingerprint") for line in lines)
    print(f"VERIFIED: {chains} chain(s), every record signed, linked and complete"
          + ("; every device chain vouched for by the central store's key." if vouched else "."))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
