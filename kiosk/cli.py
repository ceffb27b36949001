"""The ``kiosk`` command. Exit codes: 0 ok, 1 a check failed, 2 usage or configuration error."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from kiosk import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="kiosk",
    help="Controlled-access e-signing kiosk (21 CFR Part 11 / EU GMP Annex 11).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDirOption = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Kiosk data directory (default: $KIOSK_DATA_DIR or the platform data dir)."),
]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", envvar="KIOSK_CONFIG", help="Policy file (default: the shipped config/kiosk.toml)."),
]


def fail(message: str, code: int = EXIT_USAGE) -> "typer.Exit":
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def existing_store(data_dir: Optional[Path], hint: str = "") -> Path:
    """The data directory of a kiosk store that exists. Opening a store makes one where there is none, with a
    device key and a site key: a mistyped --data-dir must be named, never turned into a new terminal that an
    admin might then list as having no users, or bootstrap."""
    from kiosk.paths import resolve_data_dir
    from storage.local_store import DB_FILE

    directory = resolve_data_dir(data_dir)
    if not (directory / DB_FILE).is_file():
        raise fail(f"{directory / DB_FILE}: no local store here (wrong --data-dir?){hint}")
    return directory


@contextlib.contextmanager
def output_file(out: Path) -> Iterator[None]:
    """A file a command cannot write is a message naming it, not a traceback (and never half a file:
    exports are written with services.atomic_file)."""
    from kiosk.services.pdf_font import PdfError

    try:
        yield
    except OSError as exc:
        raise fail(f"{out}: cannot be written ({exc.strerror or exc})") from None
    except PdfError as exc:
        raise fail(str(exc)) from None


@app.command()
def version() -> None:
    """Print the kiosk software version."""
    typer.echo(__version__)


@app.command()
def verify(data_dir: DataDirOption = None) -> None:
    """Verify every record of the local chain: signatures, links, checkpoints, tail."""
    from kiosk.paths import resolve_data_dir
    from storage.sqlite import StoreUnavailable
    from storage.verify_local import StoreMissing, verify_local_store

    directory = resolve_data_dir(data_dir)
    pinned = _device_key_pin(directory)
    try:
        report = verify_local_store(directory, pinned=pinned)
    except (StoreMissing, StoreUnavailable) as exc:
        raise fail(str(exc))
    for chain in report.chains:
        typer.echo(
            f"chain {chain.chain}: {chain.records} records, {chain.checkpoints} checkpoints, "
            f"{chain.first_ts} .. {chain.last_ts}, head {chain.head_hash[:16]}"
        )
    if report.ok:
        typer.echo(f"OK: {report.records} records in {len(report.chains)} chain(s) verified ({report.path})")
        return
    err = report.error
    typer.echo(f"FAILED: first bad record: {err.where}: {err.reason}: {err.detail}")
    raise typer.Exit(EXIT_FAILED)


def _device_key_pin(directory: Path) -> dict:
    """This terminal's own chain must be signed with the key in its key file.

    A chain rewritten and re-signed with a fresh key is otherwise self-consistent.
    A copy without the key file (an inspector's) is verified unpinned; the
    central ledger, which pinned the key at enrolment, is the stronger check.
    """
    from storage.keyfile import KeyFileError, load_identity

    try:
        identity = load_identity(directory)
    except KeyFileError as exc:
        typer.echo(f"note: the chain's key is not checked against the device key file ({exc})")
        return {}
    return {} if identity is None else {identity.chain: identity.key.public}


@app.command()
def demo(data_dir: DataDirOption = None) -> None:
    """Start a complete demo kiosk (embedded store, demo users and recipes; credentials on screen)."""
    from kiosk.app import make_app
    from kiosk.demo import banner_text, create_demo, demo_central
    from kiosk.sync_worker import SyncWorker
    from kiosk.system_clock import SystemClock

    clock = SystemClock("Europe/Dublin")
    typer.echo("Preparing the demo kiosk (users, recipes, batches, embedded central store)...")
    kiosk, users = create_demo(data_dir, clock)
    central, sync = demo_central(kiosk)
    typer.echo(f"Demo data directory: {kiosk.data_dir}")
    worker = SyncWorker(sync, after_sync=central.ingest_all)
    worker.start()
    app_ = make_app(kiosk, banner=lambda: banner_text(users, clock, kiosk), sync=sync, central=central)
    try:
        app_.run()
    finally:
        worker.stop()
        worker.join(5)
        central.close()
        kiosk.close()
    typer.echo(f"Demo ended. Its records stay in {kiosk.data_dir}; check them with: kiosk verify --data-dir {kiosk.data_dir}")


@app.command()
def run(data_dir: DataDirOption = None, config: ConfigOption = None) -> None:
    """Start the kiosk from its configuration and data directory."""
    from kiosk.app import build_kiosk, make_app, next_epoch_from
    from kiosk.config import ConfigError, load_config
    from kiosk.paths import resolve_data_dir
    from kiosk.services.config_trail import record_settings
    from kiosk.system_clock import SystemClock
    from storage.keyfile import KeyFileError
    from storage.migrate import SchemaTooNew
    from storage.sitekey import SITE_KEY_FILE
    from storage.sqlite import StoreUnavailable

    try:
        cfg = load_config(config)
        clock = SystemClock(cfg.site.timezone)
        directory = resolve_data_dir(data_dir)
        if not cfg.sync.central_url:
            # A standalone kiosk's store is made by `kiosk admin bootstrap`, with its first admin.
            existing_store(directory, f"; a new standalone kiosk starts with `kiosk admin bootstrap --data-dir "
                                      f"{directory}`")
        elif not (directory / SITE_KEY_FILE).exists():
            # A fresh site key here would seal nothing the site's other terminals can read, and open nothing
            # the central directory holds: a terminal joining a site gets the site's key installed.
            raise fail(f"{directory / SITE_KEY_FILE}: missing. This terminal syncs with a central store, so it "
                       "joins an existing site: install the site's key file before the first start, with "
                       f"`kiosk admin site-key install FILE --data-dir {directory}` (docs/admin-guide.md, 'Site key').")
        epoch = next_epoch_from(cfg.sync.central_url, clock) if cfg.sync.central_url else 1
        kiosk = build_kiosk(cfg, directory, clock, epoch=epoch)
        # Before anyone signs under them: the settings in effect, when they differ from the last recorded.
        record_settings(kiosk.store, cfg.settings(), cfg.source, kiosk.identity.device_id)
    except (ConfigError, KeyFileError, SchemaTooNew, StoreUnavailable) as exc:
        raise fail(str(exc))
    # A terminal of a site with a central store gets its users from the central directory once approved.
    if not cfg.sync.central_url and not kiosk.auth.any_admin():
        kiosk.close()
        raise fail("this kiosk has no users yet: run `kiosk admin bootstrap` first")
    worker = central = sync = None
    if cfg.sync.central_url:
        from kiosk.app import central_sync
        from kiosk.sync_worker import SyncWorker

        central, sync = central_sync(kiosk, cfg.sync.central_url)
        worker = SyncWorker(sync)
        worker.start()
    try:
        make_app(kiosk, sync=sync, central=central).run()
    finally:
        if worker is not None:
            worker.stop()
            worker.join(5)
            central.close()
        kiosk.close()


def _register_subcommands() -> None:
    from kiosk import cli_admin, cli_central, cli_export, cli_validation

    app.add_typer(cli_central.central_app, name="central")
    app.add_typer(cli_central.sync_app, name="sync")
    app.add_typer(cli_admin.app, name="admin")
    cli_admin.app.add_typer(cli_central.devices_app, name="devices")
    app.add_typer(cli_validation.app, name="validation")
    app.add_typer(cli_export.app, name="export")


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
