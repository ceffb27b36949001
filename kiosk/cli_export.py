"""`kiosk export ...`: copies for QA reviewers and inspectors (11.10(b))."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Export records for review and inspection.", no_args_is_help=True)


@app.command()
def bundle(
    out: Annotated[Path, typer.Option("--out", help="The zip file to write.")],
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Local store to export.")] = None,
) -> None:
    """Write an inspector bundle: raw signed records, device keys, anchors and a standalone verifier."""
    from kiosk.cli import fail
    from kiosk.paths import resolve_data_dir
    from kiosk.services.bundle import write_bundle
    from kiosk.system_clock import SystemClock
    from kiosk.domain.clock import format_ts
    from storage.bundle_local import LocalBundleSource
    from storage.local_store import DB_FILE

    db = resolve_data_dir(data_dir) / DB_FILE
    if not db.is_file():
        raise fail(f"{db}: no local store here (wrong --data-dir?)")
    if out.suffix != ".zip":
        raise fail("--out must name a .zip file")
    source = LocalBundleSource(db)
    try:
        hashes = write_bundle(out, source, exported_at=format_ts(SystemClock().now()),
                              filters={"source": "local", "data_dir": str(db.parent)})
    except OSError as exc:
        raise fail(f"{out}: cannot be written ({exc.strerror})")
    finally:
        source.close()
    chains = sum(1 for n in hashes if n.startswith("chains/"))
    typer.echo(f"wrote {out}: {chains} chain(s); verify with: python3 verify_bundle.py {out.name}")
