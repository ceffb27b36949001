"""Where the shipped defaults (config/, recipes, blocklist) live.

In a source checkout they are the repository's config/ folder; in an
installed wheel setuptools maps that folder to the ``kiosk.defaults`` package.
"""

from __future__ import annotations

from pathlib import Path


def defaults_dir() -> Path:
    source_tree = Path(__file__).resolve().parent.parent / "config"
    if (source_tree / "kiosk.toml").is_file():
        return source_tree
    installed = Path(__file__).resolve().parent / "defaults"
    if (installed / "kiosk.toml").is_file():
        return installed
    raise FileNotFoundError(f"the shipped defaults are missing (looked in {source_tree} and {installed}); reinstall the kiosk")
