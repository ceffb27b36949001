"""The device's identity on disk: its Ed25519 key (0600) and its chain epoch.

The private key never leaves this file and is never printed. A key file that
others can read is refused rather than silently tightened: it may already
have been copied, and the site must decide whether to re-register.
"""

from __future__ import annotations

from typing import Callable

import functools
import json
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from kiosk.domain.keys import KeyError_, SigningKey
from kiosk.domain.records import chain_id

KEY_FILE = "device.key"
IDENTITY_FILE = "device.json"


class KeyFileError(Exception):
    """The key file cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    epoch: int
    key: SigningKey

    @functools.cached_property
    def chain(self) -> str:
        return chain_id(self.device_id, self.epoch)


def default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-.") or "kiosk"
    return host[:63]


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def check_private_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file is missing") from None
    except PermissionError:
        raise KeyFileError(f"{path}: key file cannot be read by this account; check its owner") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{path}: key file is readable or writable by group/others (mode {stat.S_IMODE(st.st_mode):04o}). "
            f"If it may have been copied, re-register this device; otherwise fix it with: chmod 600 {path}"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise KeyFileError(f"{path}: key file is owned by uid {st.st_uid}, not by the kiosk account")


def fsync_dir(directory: Path) -> None:
    """Make a file's creation or rename in ``directory`` durable (the name lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, *, exclusive: bool = False, mode: int = 0o600) -> None:
    """Write ``path`` so that after a power cut it holds all of ``data`` or does not exist.

    A write, rename or create without fsync can leave an empty file behind
    after a crash (ext4 with delayed allocation commits the rename before the
    data): an empty device.json would stop the kiosk from starting.
    """
    path = Path(path)
    target = path if exclusive else path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(target, flags, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(target, path)
    fsync_dir(path.parent)


def _write_private(path: Path, data: bytes) -> None:
    write_durably(path, data, exclusive=True)


def load_identity(data_dir: Path) -> DeviceIdentity | None:
    key_path = Path(data_dir) / KEY_FILE
    id_path = Path(data_dir) / IDENTITY_FILE
    if not key_path.exists() and not id_path.exists():
        return None
    if not id_path.exists():
        raise KeyFileError(f"{id_path}: missing while {key_path} exists; restore it from backup or re-register")
    check_private_file(key_path)
    try:
        key = SigningKey.from_pem(key_path.read_bytes())
    except KeyError_ as exc:
        raise KeyFileError(f"{key_path}: {exc}") from None
    except OSError as exc:
        raise KeyFileError(f"{key_path}: cannot be read ({exc.strerror})") from None
    try:
        meta = json.loads(id_path.read_text("utf-8"))
        identity = DeviceIdentity(str(meta["device_id"]), int(meta["epoch"]), key)
        identity.chain  # validates the id
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"{id_path}: not a valid device identity file ({exc})") from None
    if meta.get("kid") != key.kid:
        raise KeyFileError(f"{id_path}: names key {meta.get('kid')}, but {key_path} holds key {key.kid}")
    return identity


def create_identity(data_dir: Path, device_id: str, epoch: int = 1) -> DeviceIdentity:
    """Generate a new key for ``device_id``; refuses to overwrite an existing one."""
    data_dir = Path(data_dir)
    ensure_private_dir(data_dir)
    chain_id(device_id, epoch)  # validate before writing anything
    if device_id == "central":
        raise KeyFileError("'central' is the central store's own chain; give the terminal another device id")
    key = SigningKey.generate()
    key_path = data_dir / KEY_FILE
    try:
        _write_private(key_path, key.to_pem())
    except FileExistsError:
        raise KeyFileError(f"{key_path}: a device key already exists; refusing to replace it") from None
    meta = {"device_id": device_id, "epoch": epoch, "kid": key.kid}
    write_durably(data_dir / IDENTITY_FILE, json.dumps(meta, indent=2).encode("utf-8"), mode=0o644)
    return DeviceIdentity(device_id, epoch, key)


def load_central_key(path: Path) -> SigningKey:
    """The central store's signing key (0600, like a device key); a clear error when it cannot be used."""
    path = Path(path)
    if not path.exists():
        raise KeyFileError(f"{path}: no central key here (create it with `kiosk central init --key-file {path}`)")
    check_private_file(path)
    try:
        return SigningKey.from_pem(path.read_bytes())
    except KeyError_ as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot be read ({exc.strerror})") from None


def load_or_create_central_key(path: Path) -> SigningKey:
    path = Path(path)
    if path.exists():
        return load_central_key(path)
    ensure_private_dir(path.parent)
    key = SigningKey.generate()
    _write_private(path, key.to_pem())
    return key


def load_or_create_identity(data_dir: Path, device_id: str | None = None,
                            epoch: "int | Callable[[str], int]" = 1) -> DeviceIdentity:
    """``epoch`` may be a function of the device id, asked only when a new key is made (re-registration)."""
    identity = load_identity(data_dir)
    if identity is None:
        device_id = device_id or default_device_id()
        identity = create_identity(data_dir, device_id, epoch(device_id) if callable(epoch) else epoch)
    return identity
