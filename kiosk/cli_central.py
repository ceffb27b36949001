"""`kiosk central ...` and `kiosk sync ...`: the central store and this kiosk's outbox."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from kiosk.domain.severity import SEVERITIES

central_app = typer.Typer(help="The central store (PostgreSQL, or SQLite for a single site).", no_args_is_help=True)
# `kiosk admin devices ...` (ARCHITECTURE.md's command line): decisions made against the central store.
devices_app = typer.Typer(help="Device registrations in the central store.", no_args_is_help=True)
sync_app = typer.Typer(help="This kiosk's sync with the central store.", no_args_is_help=True)

# The choices of --severity (typer offers an Enum's values).
Severity = Enum("Severity", {s: s for s in SEVERITIES}, type=str)

# An approved terminal's records this long in the inbox: ingest is not running, or failing (`central status`).
INGEST_LATE_S = 900

Url = Annotated[str, typer.Option("--url", envvar="KIOSK_CENTRAL_URL",
                                  help="e.g. postgresql+psycopg://user@host/db or sqlite:///central.db")]
KeyFile = Annotated[Optional[Path], typer.Option(
    "--key-file", envvar="KIOSK_CENTRAL_KEY",
    help="The central store's Ed25519 key (0600). Default for sqlite:///F: F.key next to the database.")]


def _key_path(url: str, key_file: Optional[Path]) -> Path:
    from kiosk.cli import fail

    if key_file is not None:
        return key_file
    from storage.central import default_key_file

    beside = default_key_file(url)
    if beside is not None:
        return beside
    raise fail("give the central key with --key-file (or KIOSK_CENTRAL_KEY); it signs receipts, directory "
               "publications and admin decisions")


def open_central(url: str, key_file: Optional[Path] = None, *, need_key: bool = False, create: bool = False):
    """The central store for a command. Only ``create`` (``kiosk central init``) creates or migrates it, and
    its key; every other command refuses a URL where no current store is, instead of making an empty one."""
    from kiosk.cli import fail
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore
    from storage.keyfile import KeyFileError, load_central_key, load_or_create_central_key

    key = None
    if need_key:
        path = _key_path(url, key_file)
        if create and not path.exists():
            # A mistyped URL must fail before a key is made for a store that will never exist.
            _reported(url, lambda: _connect_once(url))
        try:
            key = load_or_create_central_key(path) if create else load_central_key(path)
        except KeyFileError as exc:
            raise fail(str(exc))
    return _reported(url, lambda: CentralStore.open(url, SystemClock(), key, migrate_schema=create))


def _connect_once(url: str) -> None:
    from storage.central import central_engine

    engine = central_engine(url, create=True)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _reported(url: str, step):
    """``step()``, with what can go wrong opening a central store as a one-line error naming the URL."""
    from kiosk.cli import fail
    from kiosk.domain.central_url import without_password
    from storage.central import CentralError
    from storage.migrate import SchemaNotCurrent, SchemaTooNew

    try:
        return step()
    except (SchemaNotCurrent, SchemaTooNew) as exc:
        raise fail(str(exc))
    except CentralError as exc:
        raise fail(f"{without_password(url)}: {exc}")
    except Exception as exc:  # noqa: BLE001 - connection and migration failures are usage errors here
        raise fail(f"{without_password(url)}: cannot open the central store ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")


@central_app.command()
def init(url: Url, key_file: KeyFile = None) -> None:
    """Create or migrate the central store schema and its signing key; print the key's fingerprint."""
    store = open_central(url, key_file, need_key=True, create=True)
    try:
        typer.echo("central store ready")
        typer.echo(f"central key fingerprint: {store.key.public.fingerprint}")
        typer.echo("Each kiosk shows the fingerprint it pinned on its device status screen: compare them.")
    finally:
        store.close()


@central_app.command()
def ingest(url: Url, key_file: KeyFile = None,
           once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
           poll_s: Annotated[float, typer.Option(
               help="Seconds between passes on SQLite; on PostgreSQL the fallback poll "
                    "(pushes wake the worker at once through LISTEN/NOTIFY).")] = 30.0) -> None:
    """Verify inbox records and move them to the ledger (quarantining what fails)."""
    import signal
    import threading

    from storage.ingest_loop import run_ingest_loop

    store = open_central(url, key_file, need_key=True)
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
    from kiosk.domain.central_url import without_password
    from storage.verify_central import verify_central

    def show(check) -> None:
        if check.ok:
            typer.echo(f"{'OK':<5} {check.chain}  {check.status}  {check.records} records, "
                       f"{check.checkpoints} checkpoints")
        else:
            err = check.error
            typer.echo(f"{'FAIL':<5} {check.chain}  {check.status}  first bad record: "
                       f"{err.where}: {err.reason}: {err.detail}")

    open_central(url).close()  # a store with the current schema is there (a mistyped URL is not an empty ledger)
    try:
        report = verify_central(url, workers, on_chain=show)
    except Exception as exc:  # noqa: BLE001 - an unreachable or unmigrated store is a usage error here
        raise fail(f"{without_password(url)}: cannot read the central ledger ({type(exc).__name__}: "
                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''})".replace(url, without_password(url)))
    failed = [c for c in report.chains if not c.ok]
    if failed:
        typer.echo(f"FAILED: {len(failed)} of {len(report.chains)} chains do not verify")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"OK: {report.records} records in {len(report.chains)} chains verified (central and devices)")


@central_app.command()
def quarantine(url: Url, chain: Annotated[Optional[str], typer.Option(
        "--chain", help="Only this device chain, e.g. line-3:1.")] = None) -> None:
    """List the quarantined rows (never dropped), oldest first, each with its reason."""
    from kiosk.domain.clock import utc_text
    from kiosk.domain.display import safe_str

    store = open_central(url)
    try:
        count = 0
        for row in store.quarantined(chain):
            count += 1
            typer.echo(f"{utc_text(row['at'], seconds=True)}  {safe_str(row['chain'])} #{row['seq']}  "
                       f"{safe_str(row['reason'])}")
    finally:
        store.close()
    typer.echo(f"{count} quarantined row{'s' if count != 1 else ''}" if count else "no quarantined rows")


@central_app.command("status")
def central_status(url: Url, silent_after_h: Annotated[float, typer.Option(
        "--silent-after-h", min=0.1, help="An approved terminal not heard from for longer than this is named "
                                          "(exit 1).")] = 24.0) -> None:
    """Each device chain's sync health: status, head, when its records were last taken in, inbox and quarantine."""
    from kiosk.cli import EXIT_FAILED
    from kiosk.domain.clock import parse_ts
    from kiosk.domain.display import safe_str

    store = open_central(url)
    try:
        now, rows = store.now(), store.chain_status()
    finally:
        store.close()
    typer.echo(f"{'CHAIN':<24} {'STATUS':<9} {'HEAD':>8}  {'LAST TAKEN IN (UTC)':<19} {'AGO':>8} {'INBOX':>7} "
               f"{'QUARANTINED':>11}  {'NEWEST RECORD (TERMINAL CLOCK, UTC)':<35}  KIOSK")
    silent, stuck = [], []
    for row in rows:
        taken_in = row["taken_in"]
        ago = (now - parse_ts(taken_in)).total_seconds() if taken_in else None
        if row["status"] == "approved" and (ago is None or ago > silent_after_h * 3600):
            silent.append(f"{safe_str(row['chain'])} ({'never' if ago is None else _ago(ago)})")
        waited = (now - parse_ts(row["waiting_since"])).total_seconds() if row["waiting"] else 0
        if row["status"] == "approved" and waited > INGEST_LATE_S:
            stuck.append(f"{safe_str(row['chain'])} ({row['waiting']} since {_minute(row['waiting_since'])} UTC)")
        typer.echo(f"{safe_str(row['chain']):<24} {row['status']:<9} {row['seq']:>8}  {_minute(taken_in):<19} "
                   f"{'' if ago is None else _ago(ago):>8} {row['waiting']:>7} {row['quarantined']:>11}  "
                   f"{_minute(row['last_kiosk_ts']):<35}  {safe_str(row['kiosk_version'] or '-')}")
    typer.echo(f"{len(rows)} device chain{'s' if len(rows) != 1 else ''}")
    if stuck:
        # First: with no ingest, nothing is receipted, and every terminal also looks silent.
        typer.echo(f"records of approved terminals waiting in the inbox for more than {INGEST_LATE_S // 60} min: "
                   f"{', '.join(stuck)}: is `kiosk central ingest` running? (its log says why it fails)")
    if silent:
        typer.echo(f"not heard from for more than {silent_after_h:g} h: {', '.join(silent)} (an outage keeps their "
                   "records on the terminals; check the network and the terminals)")
    if silent or stuck:
        raise typer.Exit(EXIT_FAILED)


@central_app.command("alerts")
def central_alerts(
    url: Url,
    level: Annotated[Severity, typer.Option(
        "--severity", help="List the alerts this urgent and above (critical: what waits on a person now).")
    ] = Severity.info,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="How many of the newest to list.")] = 50,
) -> None:
    """The alerts nobody has acknowledged yet, every terminal's and the central store's, newest first (exit 1
    while a critical one is open)."""
    from kiosk.cli import EXIT_FAILED
    from kiosk.domain.display import safe_str

    store = open_central(url)
    try:
        alerts, counts = store.open_alerts(limit, level.value)
    finally:
        store.close()
    wanted = SEVERITIES[SEVERITIES.index(level.value):]
    if alerts:
        typer.echo(f"{'RAISED (UTC)':<16}  {'SEVERITY':<8}  {'KIND':<22} {'DEVICE':<20} MESSAGE")
    for alert in alerts:
        typer.echo(f"{_minute(alert.get('at')):<16}  {safe_str(alert.get('severity')):<8}  "
                   f"{safe_str(alert.get('kind')):<22} {safe_str(alert.get('device')):<20} "
                   f"{safe_str(alert.get('message'))}")
    known = "open alerts: " + ", ".join(f"{n:,} {safe_str(s)}" for s, n in counts.items())
    filtered = level is not Severity.info
    if not alerts:
        typer.echo(f"{known} (none {level.value + ' or above ' if filtered else ''}to show)")
    else:
        matching = sum(counts.get(s, 0) for s in wanted)
        scope = f"{matching:,} {' or '.join(reversed(wanted))}; " if filtered else ""
        typer.echo(f"{known} ({scope}the newest {len(alerts):,} shown)")
        typer.echo("acknowledge them on a terminal's supervisor screen (F3); each acknowledgement is a signed record")
    if counts.get("critical"):
        raise typer.Exit(EXIT_FAILED)


def _minute(ts: Optional[str]) -> str:
    from kiosk.domain.clock import utc_text

    return utc_text(ts) if ts else "never"


def _ago(seconds: float) -> str:
    if seconds < 60:
        return "< 1 min"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@devices_app.command("list")
def devices_list(url: Url) -> None:
    """Device chains with status, key fingerprint and the reason of the last decision."""
    store = open_central(url)
    try:
        for d in store.devices():
            typer.echo(f"{d['chain']:<30} {d['status']:<9} head #{d['seq']:<6} {d['reason'] or ''}")
            typer.echo(f"    fingerprint {d['fingerprint']}")
    finally:
        store.close()


def _set(url: str, key_file: Optional[Path], chain: str, status: str, admin: Optional[str], key_holder: bool,
         reason: str, site_key: Optional[Path]) -> None:
    _as_admin(url, key_file, admin, key_holder, reason, site_key,
              lambda store, actor: store.decide_device(chain, status, actor, reason))
    typer.echo(f"{chain}: {status} (a signed record in the central chain)")


def _as_admin(url: str, key_file: Optional[Path], admin: Optional[str], key_holder: bool, reason: str,
              site_key: Optional[Path], act):
    """``act(store, actor)`` and what it returns, with the central key, as an admin authenticated against the
    central directory (or as the key holder before any admin exists there): what the central chain records as
    who."""
    from kiosk.cli import EXIT_FAILED, fail
    from kiosk.domain.passwords import PasswordHasher
    from kiosk.services.central_admin import CentralAdmin, CentralAdminError
    from storage.central import CentralError

    if bool(admin) == key_holder:
        raise fail("say who decides: --admin ID (password prompted), or --as-key-holder before any admin exists")
    box = None
    if admin:
        from kiosk.domain.totp import SecretBox
        from storage.keyfile import KeyFileError
        from storage.sitekey import load_site_key

        if site_key is None:
            raise fail("give the site key with --site-key (or KIOSK_SITE_KEY): passwords are sealed with it")
        try:
            box = SecretBox(load_site_key(site_key.parent, site_key.name))
        except KeyFileError as exc:
            raise fail(str(exc))
    store = open_central(url, key_file, need_key=True)
    try:
        gate = CentralAdmin(lambda uid: store.directory_doc("user", uid), store.has_active_admin, PasswordHasher(),
                            box)
        try:
            if key_holder:
                actor = gate.key_holder()
            else:
                password = typer.prompt(f"password for {admin}", hide_input=True)
                actor = gate.authenticate(admin, password, recorded=[reason])
            return act(store, actor)
        except (CentralAdminError, CentralError) as exc:
            raise fail(str(exc), code=EXIT_FAILED)
    finally:
        store.close()


Admin = Annotated[Optional[str], typer.Option("--admin", help="Your admin user id; your password is prompted.")]
KeyHolder = Annotated[bool, typer.Option("--as-key-holder",
                                         help="Only before any admin exists centrally: approve the first terminal.")]
Reason = Annotated[str, typer.Option(prompt=True)]
SiteKey = Annotated[Optional[Path], typer.Option("--site-key", envvar="KIOSK_SITE_KEY",
                                                 help="The site key file (0600) that seals credentials.")]


@devices_app.command()
def approve(chain: str, url: Url, reason: Reason, key_file: KeyFile = None, admin: Admin = None,
            as_key_holder: KeyHolder = False, site_key: SiteKey = None) -> None:
    """Approve a pending device after comparing its key fingerprint on site."""
    _set(url, key_file, chain, "approved", admin, as_key_holder, reason, site_key)


@devices_app.command()
def reject(chain: str, url: Url, reason: Reason, key_file: KeyFile = None, admin: Admin = None,
           as_key_holder: KeyHolder = False, site_key: SiteKey = None) -> None:
    """Reject a device registration."""
    _set(url, key_file, chain, "rejected", admin, as_key_holder, reason, site_key)


@devices_app.command()
def revoke(chain: str, url: Url, reason: Reason, key_file: KeyFile = None, admin: Admin = None,
           as_key_holder: KeyHolder = False, site_key: SiteKey = None) -> None:
    """Revoke a device: its later records are quarantined."""
    _set(url, key_file, chain, "revoked", admin, as_key_holder, reason, site_key)


def _sync_service(data_dir: Optional[Path], url: Optional[str], config: Optional[Path]):
    """This terminal's sync, against ``url`` or else the central store its configuration names."""
    from kiosk.cli import existing_store, fail
    from kiosk.config import ConfigError, load_config
    from kiosk.system_clock import SystemClock
    from storage.central import CentralStore
    from storage.keyfile import KeyFileError, load_identity
    from storage.local_store import LocalStore

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise fail(str(exc))
    url = url or cfg.sync.central_url
    if not url:
        raise fail("this terminal's configuration names no central store (sync.central_url); "
                   "give one with --url or KIOSK_CENTRAL_URL")
    directory = existing_store(data_dir)
    clock = SystemClock()
    try:
        identity = load_identity(directory)
    except KeyFileError as exc:
        raise fail(str(exc))
    if identity is None:
        raise fail(f"{directory}: the store has no device key here (device.key, device.json); restore them "
                   "from the terminal's backup")
    central = _reported(url, lambda: CentralStore(url, clock))  # a URL no central store can have, named
    from kiosk.app import sync_service
    from storage.directory_local import LocalDirectory, directory_projector

    store = LocalStore.open(directory, identity, clock, projectors=[directory_projector])
    return store, sync_service(store, LocalDirectory(store.read_engine()), cfg, clock, lambda: central)


SyncUrl = Annotated[Optional[str], typer.Option(
    "--url", envvar="KIOSK_CENTRAL_URL", help="The central store (default: sync.central_url of --config).")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", envvar="KIOSK_CONFIG", help="Policy file.")]


@sync_app.command()
def status(url: SyncUrl = None, data_dir: Annotated[Optional[Path], typer.Option("--data-dir")] = None,
           config: ConfigFile = None) -> None:
    """Queued records, last sync and last error of this kiosk."""
    store, service = _sync_service(data_dir, url, config)
    try:
        s = service.status()
        head = store.head()
        typer.echo(f"chain {store.chain}: {s.queued} queued, synced up to #{head.synced_upto} of #{head.seq}")
        typer.echo(f"last successful sync: {s.last_sync.isoformat() if s.last_sync else 'never'}")
        if s.offline_since:
            typer.echo(f"offline since: {s.offline_since.isoformat()} ({s.failures} failed attempts)")
        if s.last_error:
            typer.echo(f"last error: {s.last_error}")
    finally:
        store.close()


@sync_app.command()
def now(url: SyncUrl = None, data_dir: Annotated[Optional[Path], typer.Option("--data-dir")] = None,
        config: ConfigFile = None) -> None:
    """Push unsynced records now and apply the central receipt."""
    from kiosk.cli import EXIT_FAILED

    store, service = _sync_service(data_dir, url, config)
    try:
        s = service.sync_once()
    finally:
        store.close()
    if s.offline_since:
        typer.echo(f"offline: {s.last_error}; {s.queued} queued (kept, retried later)")
        raise typer.Exit(EXIT_FAILED)
    if s.last_error:  # sent and receipted, but the directory was not pulled
        typer.echo(f"sent; {s.queued} queued; directory not updated: {s.last_error}")
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"synced; {s.queued} queued")


@central_app.command()
def rebase(url: Url, reason: Reason, key_file: KeyFile = None, admin: Admin = None,
           as_key_holder: Annotated[bool, typer.Option("--as-key-holder",
                                                       help="Only before any admin exists centrally.")] = False,
           site_key: SiteKey = None) -> None:
    """After restoring this store from a backup, publish the whole directory for terminals to start again from."""
    # Terminals that applied publications the backup does not hold stop pulling (a critical sync.central_behind
    # alert) until this runs. First let them send their records again, and make again the device decisions made
    # since the backup (docs/operations.md).
    signed = _as_admin(url, key_file, admin, as_key_holder, reason, site_key,
                       lambda store, actor: store.rebase_directory(actor, reason))
    typer.echo(f"directory rebased: publication #{signed.record.seq}, a snapshot that terminals which stopped "
               "pulling take in place of what they hold")
