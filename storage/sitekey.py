"""The site secret key: encrypts TOTP secrets and password hashes at rest (AES-GCM).

Every kiosk of a site and the central store hold the same key, so a directory
pulled from the central store is usable on any registered kiosk. It is a file
of 32 random bytes, mode 0600, refused if others can read it.
"""

from __future__ import annotations

import os
from pathlib import Path

from storage.keyfile import KeyFileError, check_private_file, ensure_private_dir, write_durably

SITE_KEY_FILE = "site.key"


def load_site_key(data_dir: Path, name: str = SITE_KEY_FILE) -> bytes:
    path = Path(data_dir) / name
    if not path.exists():
        raise KeyFileError(f"{path}: no site key here; install the site's key file (0600)")
    check_private_file(path)
    data = path.read_bytes()
    if len(data) != 32:
        raise KeyFileError(f"{path}: a site key is exactly 32 bytes; restore it from the site's key backup")
    return data


def create_site_key(data_dir: Path, key: bytes | None = None) -> bytes:
    """Write a new (or a copied) site key; refuses to replace an existing one."""
    ensure_private_dir(Path(data_dir))
    path = Path(data_dir) / SITE_KEY_FILE
    key = key if key is not None else os.urandom(32)
    if len(key) != 32:
        raise KeyFileError("a site key is exactly 32 bytes")
    try:
        write_durably(path, key, exclusive=True)
    except FileExistsError:
        raise KeyFileError(f"{path}: a site key already exists; refusing to replace it") from None
    return key


def load_or_create_site_key(data_dir: Path) -> bytes:
    path = Path(data_dir) / SITE_KEY_FILE
    return load_site_key(data_dir) if path.exists() else create_site_key(data_dir)
