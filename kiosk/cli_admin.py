"""`kiosk admin ...`: site administration from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Site administration.", no_args_is_help=True)

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Kiosk data directory.")]


@app.command()
def backup(out: Annotated[Path, typer.Option("--out", help="Backup file to create.")], data_dir: DataDir = None) -> None:
    """Back up the local store (online, consistent) and verify the copy by its hash chain."""
    from kiosk.cli import EXIT_FAILED, fail
    from kiosk.paths import resolve_data_dir
    from storage.backup import BackupError, backup as do_backup

    try:
        result = do_backup(resolve_data_dir(data_dir), out)
    except BackupError as exc:
        raise fail(str(exc), code=EXIT_FAILED)
    typer.echo(f"backup written and verified: {result.path} ({result.report.records} records)")


@app.command()
def restore(
    backup_file: Annotated[Path, typer.Option("--from", help="Backup file to restore.")],
    data_dir: DataDir = None,
) -> None:
    """Restore a verified backup; the replaced store is moved aside, never deleted."""
    from kiosk.cli import EXIT_FAILED, fail
    from kiosk.domain.clock import format_ts
    from kiosk.paths import resolve_data_dir
    from kiosk.system_clock import SystemClock
    from storage.backup import BackupError, restore as do_restore

    heads = None
    stamp = format_ts(SystemClock().now()).replace(":", "")
    try:
        report, moved = do_restore(backup_file, resolve_data_dir(data_dir), central_heads=heads, moved_suffix=stamp)
    except BackupError as exc:
        raise fail(str(exc), code=EXIT_FAILED)
    typer.echo(f"restored and verified: {report.records} records" + (f"; previous store kept as {moved}" if moved else ""))
