"""The inspector bundle: raw signed records plus everything needed to check them offline.

Chains are streamed into the zip one line at a time and hashed on the way, so
a bundle of millions of records needs no more memory than one record.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import asdict

from kiosk.domain.exports import BundleDevice
from kiosk.services.atomic_file import written_atomically
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterator, Protocol

BUNDLE_VERSION = 1


class BundleSource(Protocol):
    def devices(self) -> list[BundleDevice]: ...

    def record_lines(self, device: BundleDevice) -> Iterator[str]:
        """The chain's record lines in seq order, each ``{"r":…,"s":…}``."""
        ...

    def anchors(self) -> dict[str, Any]:
        """``{"chains": {chain: {"seq", "hash", "checkpoints": [...]}}, "source": …}``."""
        ...


README = """Signing kiosk inspector bundle
==============================

chains/<device>.<epoch>.jsonl   every record of a device chain, one per line, in seq order:
                                {"r": <record>, "s": "<Ed25519 signature, base64url>"}
                                The signed bytes are the RFC 8785 canonical form of "r".
                                central.1.jsonl (from a central store): the central store's
                                own chain: device decisions, its alerts, directory publications
devices.json                    device public keys, their status and registration records
anchors.json                    the central store's view of each chain head and checkpoints, and
                                the receipt it signed at each device chain's head
MANIFEST.json                   SHA-256 of every file above, export time and filters
verify_bundle.py                a standalone verifier: Python 3.11+ and `cryptography` only

To verify:  python3 -m pip install cryptography && python3 verify_bundle.py <this zip or folder>
            add  --central-key "<fingerprint>"  to check the central key against the site's
"""


class _HashingWriter:
    def __init__(self, handle) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.handle.write(data)


def write_bundle(out: Path, source: BundleSource, *, exported_at: str, filters: dict[str, Any]) -> dict[str, str]:
    """Write the bundle to ``out`` atomically; returns the manifest's file hashes."""
    hashes: dict[str, str] = {}
    with written_atomically(out) as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            devices = source.devices()

            def put(name: str, data: bytes) -> None:
                zf.writestr(name, data)
                hashes[name] = hashlib.sha256(data).hexdigest()

            for device in devices:
                name = f"chains/{device.device_id}.{device.epoch}.jsonl"
                with zf.open(name, "w", force_zip64=True) as handle:
                    writer = _HashingWriter(handle)
                    for line in source.record_lines(device):
                        writer.write(line.encode("utf-8") + b"\n")
                hashes[name] = writer.digest.hexdigest()
            put("devices.json", json.dumps([asdict(d) for d in devices], indent=1, ensure_ascii=False).encode())
            put("anchors.json", json.dumps(source.anchors(), indent=1, ensure_ascii=False).encode())
            put("verify_bundle.py", files("kiosk.bundle").joinpath("verify_bundle.py").read_bytes())
            put("README.txt", README.encode())
            manifest = {"version": BUNDLE_VERSION, "exported_at": exported_at, "filters": filters, "files": hashes}
            zf.writestr("MANIFEST.json", json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False))
    return hashes
