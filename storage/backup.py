"""Backup and restore of a local store (Annex 11 §7).

A backup is SQLite's online backup of the live store (consistent while the
kiosk keeps signing), verified by hash chain before it is reported done. A
restore verifies the backup first, never deletes the store it replaces (it is
moved aside), and refuses a backup that is older than what the central store
has already received from this chain: re-using those seq numbers would fork
the chain, so that case needs re-registration instead.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from storage.local_store import DB_FILE
from storage.verify_local import VerifyReport, verify_local_store


class BackupError(Exception):
    """The backup or restore was not done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    report: VerifyReport


def backup(data_dir: Path, out: Path) -> BackupResult:
    source = Path(data_dir) / DB_FILE
    if not source.is_file():
        raise BackupError(f"{source}: no local store to back up")
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out}: already exists; choose a new file name (backups are never overwritten)")
    if not out.parent.is_dir():
        # Never made here: a mistyped folder, or the backup drive not mounted, would put the only copy
        # on the terminal's own disk.
        raise BackupError(f"{out.parent}: no such folder (is the backup drive mounted?); nothing was written")
    staging = out.parent / (out.name + ".partial")
    staging.mkdir(exist_ok=True)
    try:
        src = sqlite3.connect(source)
        dst = sqlite3.connect(staging / DB_FILE)
        with dst:
            src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        dst.close()
        src.close()
        report = verify_local_store(staging)
        if not report.ok:
            raise BackupError(f"the store does not verify, so no backup was written: {report.error}")
        os.replace(staging / DB_FILE, out)
        os.chmod(out, 0o600)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupResult(out, report)


def restore(backup_file: Path, data_dir: Path, *, central_heads: dict[str, int] | None = None,
            moved_suffix: str) -> tuple[VerifyReport, Path | None]:
    """Restore ``backup_file`` into ``data_dir``. ``central_heads``: chain -> seq the central store holds."""
    backup_file = Path(backup_file)
    if not backup_file.is_file():
        raise BackupError(f"{backup_file}: no such backup file")
    staging = Path(data_dir) / ".restore-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shutil.copyfile(backup_file, staging / DB_FILE)
        try:
            report = verify_local_store(staging)
        except Exception as exc:  # a backup that is not a store at all
            raise BackupError(f"{backup_file}: is not a readable kiosk store ({exc})") from None
        if not report.ok:
            raise BackupError(f"{backup_file}: does not verify: {report.error}; nothing was restored")
        for chain in report.chains:
            central = (central_heads or {}).get(chain.chain)
            if central is not None and central > chain.records:
                raise BackupError(
                    f"{backup_file}: chain {chain.chain} ends at seq {chain.records}, but the central store already "
                    f"holds seq {central}. Restoring it would fork the chain: register this terminal again "
                    "(new epoch) instead; the central store keeps every record it received."
                )
        target = Path(data_dir) / DB_FILE
        moved = None
        if target.exists():
            moved = target.with_name(f"{DB_FILE}.replaced-{moved_suffix}")
            os.replace(target, moved)
            for extra in ("-wal", "-shm"):
                side = target.with_name(DB_FILE + extra)
                if side.exists():
                    os.replace(side, moved.with_name(moved.name + extra))
        os.replace(staging / DB_FILE, target)
        os.chmod(target, 0o600)
        return report, moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)
