"""`kiosk central ...` and `kiosk sync ...`: the central store and this kiosk's outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

central_app = typer.Typer(help="The central store (PostgreSQL, or SQLite for a single site).", no_args_is_help=True)
devices_app = typer.Typer(help="Device registrations in the central store.", no_args_is_help=True)
central_app.add_typer(devices_app, name="devices")
sync_app = typer.Typer(help="This kiosk's sync with the central store.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", envvar="KIOSK_CENTRAL_URL",
                                  help="e.g. postgresql+psycopg://user@host/db or sqlite:///central.db")]


def _open(url: str):
    from kiosk.cli import fail
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore, safe_url

    try:
        return CentralStore.open(url, SystemClock())
    except Exception as exc:  # noqa: BLE001 - connection and migration failures are usage errors here
        raise fail(f"{safe_url(url)}: cannot open the central store ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")


@central_app.command()
def init(url: Url) -> None:
    """Create or migrate the central store schema."""
    _open(url).close()
    typer.echo("central store ready")


@central_app.command()
def ingest(url: Url, once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
           poll_s: Annotated[float, typer.Option(
               help="Seconds between passes on SQLite; on PostgreSQL the fallback poll "
                    "(pushes wake the worker at once through LISTEN/NOTIFY).")] = 30.0) -> None:
    """Verify inbox records and move them to the ledger (quarantining what fails)."""
    import signal
    import threading

    from storage.ingest_loop import run_ingest_loop

    store = _open(url)
    if once:
        try:
            r = store.ingest_all()
            typer.echo(f"ingested {r.ingested}, replays {r.replays}, quarantined {r.quarantined}, held {r.held}")
        finally:
            store.close()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(event) -> None:
        if event.error:
            typer.echo(f"ingest pass failed ({event.error}); retrying in {poll_s:g} s", err=True)
            return
        r = event.report
        if r.ingested or r.replays or r.quarantined or event.woken_by == "start":
            typer.echo(f"ingested {r.ingested}, replays {r.replays}, quarantined {r.quarantined}, held {r.held}")

    mode = "LISTEN kiosk_inbox, fallback poll" if store.pg else "polling"
    typer.echo(f"ingest worker running ({mode} every {poll_s:g} s); stop with Ctrl+C or SIGTERM")
    try:
        run_ingest_loop(store, poll_s=poll_s, stop=stop, on_event=show)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    typer.echo("stopped")


@central_app.command()
def verify(url: Url, workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, help="Worker processes (default: one per CPU).")] = None) -> None:
    """Re-verify every chain in the central ledger and report per device (exit 1 if any fails)."""
    from kiosk.cli import EXIT_FAILED, fail
    from storage.central import safe_url
    from storage.verify_central import verify_central

    def show(check) -> None:
        if check.ok:
            typer.echo(f"{'OK':<5} {check.chain}  {check.status}  {check.records} records, "
                       f"{check.checkpoints} checkpoints")
        else:
            err = check.error
            typer.echo(f"{'FAIL':<5} {check.chain}  {check.status}  first bad record: "
                       f"{err.where}: {err.reason}: {err.detail}")

    try:
        report = verify_central(url, workers, on_chain=show)
    except Exception as exc:  # noqa: BLE001 - an unreachable or unmigrated store is a usage error here
        raise fail(f"{safe_url(url)}: cannot read the central ledger ({type(exc).__name__}: "
                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''})".replace(url, safe_url(url)))
    failed = [c for c in report.chains if not c.ok]
    if failed:
        typer.echo(f"FAILED: {len(failed)} of {len(report.chains)} device chains do not verify")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"OK: {report.records} records in {len(report.chains)} device chains verified")


@devices_app.command("list")
def devices_list(url: Url) -> None:
    """Device chains with status and key id."""
    store = _open(url)
    try:
        for d in store.devices():
            typer.echo(f"{d['chain']:<30} {d['status']:<9} kid {d['kid']}  head #{d['seq']}  {d['reason'] or ''}")
    finally:
        store.close()


def _set(url: str, chain: str, status: str, admin: str, reason: str) -> None:
    from kiosk.cli import EXIT_FAILED, fail
    from storage.central import CentralError

    store = _open(url)
    try:
        store.set_device_status(chain, status, admin, reason)
    except CentralError as exc:
        raise fail(str(exc), code=EXIT_FAILED)
    finally:
        store.close()
    typer.echo(f"{chain}: {status}")


@devices_app.command()
def approve(chain: str, url: Url, admin: Annotated[str, typer.Option(prompt=True)],
            reason: Annotated[str, typer.Option(prompt=True)]) -> None:
    """Approve a pending device after comparing its key fingerprint on site."""
    _set(url, chain, "approved", admin, reason)


@devices_app.command()
def reject(chain: str, url: Url, admin: Annotated[str, typer.Option(prompt=True)],
           reason: Annotated[str, typer.Option(prompt=True)]) -> None:
    """Reject a device registration."""
    _set(url, chain, "rejected", admin, reason)


@devices_app.command()
def revoke(chain: str, url: Url, admin: Annotated[str, typer.Option(prompt=True)],
           reason: Annotated[str, typer.Option(prompt=True)]) -> None:
    """Revoke a device: its later records are quarantined."""
    _set(url, chain, "revoked", admin, reason)


def _sync_service(data_dir: Optional[Path], url: str):
    from kiosk.cli import fail
    from kiosk.paths import resolve_data_dir
    from kiosk.services.sync import SyncService
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore
    from storage.keyfile import KeyFileError, load_identity
    from storage.local_store import LocalStore

    directory = resolve_data_dir(data_dir)
    clock = SystemClock()
    try:
        identity = load_identity(directory)
    except KeyFileError as exc:
        raise fail(str(exc))
    if identity is None:
        raise fail(f"{directory}: no kiosk here (wrong --data-dir?)")
    from storage.directory_local import directory_projector

    store = LocalStore.open(directory, identity, clock, projectors=[directory_projector])
    return store, SyncService(store, lambda: CentralStore(url, clock), clock)


@sync_app.command()
def status(url: Url, data_dir: Annotated[Optional[Path], typer.Option("--data-dir")] = None) -> None:
    """Queued records, last sync and last error of this kiosk."""
    store, service = _sync_service(data_dir, url)
    try:
        s = service.status()
        head = store.head()
        typer.echo(f"chain {store.chain}: {s.queued} queued, synced up to #{head.synced_upto} of #{head.seq}")
    finally:
        store.close()


@sync_app.command()
def now(url: Url, data_dir: Annotated[Optional[Path], typer.Option("--data-dir")] = None) -> None:
    """Push unsynced records now and apply the central receipt."""
    from kiosk.cli import EXIT_FAILED

    store, service = _sync_service(data_dir, url)
    try:
        s = service.sync_once()
    finally:
        store.close()
    if s.last_error:
        typer.echo(f"offline: {s.last_error}; {s.queued} queued (kept, retried later)")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"synced; {s.queued} queued")
