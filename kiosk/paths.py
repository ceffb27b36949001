"""Where a kiosk keeps its data: --data-dir, else KIOSK_DATA_DIR, else the platform's user data dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "signing-kiosk"


def resolve_data_dir(option: Path | None = None) -> Path:
    if option is not None:
        return Path(option).expanduser()
    env = os.environ.get("KIOSK_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
