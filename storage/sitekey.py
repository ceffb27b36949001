"""The site secret key: encrypts TOTP secrets and password hashes at rest (AES-GCM).

Every kiosk of a site and the central store hold the same key, so a directory
pulled from the central store is usable on any registered kiosk. It is a file
of 32 random bytes, mode 0600, refused if others can read it.
"""

from __future__ import annotations

import hashlib
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


def write_site_key_file(path: Path, key: bytes | None = None) -> bytes:
    """Write a new (or a copied) site key to ``path`` (0600); refuses to replace an existing file."""
    path = Path(path)
    key = key if key is not None else os.urandom(32)
    if len(key) != 32:
        raise KeyFileError("a site key is exactly 32 bytes")
    if not path.parent.is_dir():
        raise KeyFileError(f"{path.parent}: no such directory")
    try:
        write_durably(path, key, exclusive=True)
    except FileExistsError:
        raise KeyFileError(f"{path}: a site key already exists; refusing to replace it") from None
    return key


def create_site_key(data_dir: Path, key: bytes | None = None) -> bytes:
    """Write a new (or a copied) site key into a data directory; refuses to replace an existing one."""
    ensure_private_dir(Path(data_dir))
    return write_site_key_file(Path(data_dir) / SITE_KEY_FILE, key)


def install_site_key(source: Path, data_dir: Path) -> tuple[bytes, bool]:
    """Copy the site's key file into a terminal's data directory; returns the key and whether it was copied.

    The same key already there is a no-op. A different one is never replaced: what this terminal
    sealed with it would no longer open (a terminal of another site gets a fresh data directory).
    """
    source = Path(source)
    if not source.is_file():
        raise KeyFileError(f"{source}: no such key file; give the path of the site's key file (made with "
                           "`kiosk admin site-key create`)")
    key = load_site_key(source.parent, source.name)
    if (Path(data_dir) / SITE_KEY_FILE).exists():
        if load_site_key(data_dir) == key:
            return key, False
        raise KeyFileError(f"{Path(data_dir) / SITE_KEY_FILE}: holds another site key; it is never replaced "
                           "(the secrets sealed with it would no longer open). A terminal moving to another "
                           "site starts from a new data directory.")
    return create_site_key(data_dir, key), True


def site_key_check(key: bytes) -> str:
    """A value to compare between terminals and the admin's copy: the same key gives the same value.

    It is a hash of the key under a label of its own, so it tells nothing about the key itself.
    """
    digest = hashlib.sha256(b"kiosk site key check\x00" + key).hexdigest()[:16]
    return "-".join(digest[i:i + 4] for i in range(0, 16, 4))


def load_or_create_site_key(data_dir: Path) -> bytes:
    path = Path(data_dir) / SITE_KEY_FILE
    return load_site_key(data_dir) if path.exists() else create_site_key(data_dir)
