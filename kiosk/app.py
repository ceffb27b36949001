"""Composition root: builds the services from config and a data directory.

The CLI (`kiosk run`, `kiosk demo`, admin commands) and the tests build the
kiosk through the same functions here, so what is tested is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kiosk.config import KioskConfig
from kiosk.domain.clock import Clock
from kiosk.domain.lockout import LockoutPolicy
from kiosk.domain.passwords import Blocklist, PasswordHasher, PasswordPolicy
from kiosk.domain.totp import SecretBox
from kiosk.resources import defaults_dir
from kiosk.domain.session import SessionPolicy
from kiosk.services.auth import AuthService
from kiosk.services.session import SessionService
from kiosk.services.signing import SigningService
from storage.drafts_local import LocalDrafts
from storage.directory_local import LocalDirectory, TransactionDirectory, directory_projector
from storage.keyfile import DeviceIdentity, load_or_create_identity
from storage.local_store import CheckpointPolicy, LocalStore
from storage.sitekey import load_or_create_site_key


@dataclass
class Kiosk:
    """Everything one running kiosk is made of."""

    config: KioskConfig
    data_dir: Path
    clock: Clock
    identity: DeviceIdentity
    store: LocalStore
    directory: LocalDirectory
    auth: AuthService
    session: SessionService
    signing: SigningService

    def close(self) -> None:
        self.directory.close()
        self.store.close()


_BLOCKLIST: Blocklist | None = None


def blocklist() -> Blocklist:
    """The shipped blocklist, read once per process (it is large and never changes at run time)."""
    global _BLOCKLIST
    if _BLOCKLIST is None:
        with open(defaults_dir() / "password-blocklist.txt", encoding="utf-8") as fh:
            _BLOCKLIST = Blocklist(line for line in fh if not line.startswith("#"))
    return _BLOCKLIST


def hasher_for(config: KioskConfig) -> PasswordHasher:
    p = config.password
    return PasswordHasher(time_cost=p.argon2_time_cost, memory_kib=p.argon2_memory_kib,
                          parallelism=p.argon2_parallelism)


def lockout_policy(config: KioskConfig) -> LockoutPolicy:
    a = config.auth
    return LockoutPolicy(threshold=a.lockout_threshold, delay_from_failure=a.delay_from_failure,
                         delay_base_s=a.delay_base_s, delay_max_s=a.delay_max_s, window_h=a.failure_window_h)


def password_policy(config: KioskConfig) -> PasswordPolicy:
    p = config.password
    return PasswordPolicy(min_length=p.min_length, min_length_with_totp=p.min_length_with_totp,
                          max_length=p.max_length, history=p.history, max_age_days=p.max_age_days)


def build_kiosk(config: KioskConfig, data_dir: Path, clock: Clock, *, device_id: str | None = None,
                hasher: PasswordHasher | None = None, epoch=1) -> Kiosk:
    """``epoch``: for a new key, an int or a function of the device id (see ``next_epoch_from``)."""
    identity = load_or_create_identity(data_dir, device_id or config.device.id or None, epoch)
    store = LocalStore.open(
        data_dir, identity, clock,
        checkpoints=CheckpointPolicy(config.checkpoint.every_records, config.checkpoint.every_s,
                                     config.checkpoint.idle_every_s),
        projectors=[directory_projector], txn_reader=TransactionDirectory,
        registration={"site": config.site.name, "location": config.device.location},
    )
    directory = LocalDirectory(store.read_engine(), store.cached_documents)
    auth = AuthService(
        store, directory, clock,
        hasher=hasher or hasher_for(config),
        box=SecretBox(load_or_create_site_key(data_dir)),
        blocklist=blocklist(),
        lockout=lockout_policy(config),
        passwords=password_policy(config),
        totp_at_login=config.auth.totp_at_login,
        issuer=config.site.name,
        registration_required=bool(config.sync.central_url),
    )
    session = SessionService(store, auth, LocalDrafts(store, clock), clock, session_policy(config))
    signing = SigningService(store, directory, auth, session, clock, clock_suspect=store.clock_suspect,
                             refuse_on_bad_clock=config.clock.refuse_signing_on_bad_clock)
    return Kiosk(config, Path(data_dir), clock, identity, store, directory, auth, session, signing)


def next_epoch_from(url: str, clock: Clock):
    """For a terminal making a new key (new install, wiped disk, lost key): one epoch past any the central
    store knows for its device id, so the new chain never collides with the old one. Offline: epoch 1, and
    a collision shows up centrally as a fork to resolve (never silently)."""
    def epoch(device_id: str) -> int:
        from storage.central import CentralStore

        central = CentralStore(url, clock)
        try:
            return central.next_epoch(device_id)
        except Exception:  # noqa: BLE001 - unreachable central store: see above
            return 1
        finally:
            central.close()

    return epoch


def session_policy(config: KioskConfig) -> SessionPolicy:
    s = config.session
    return SessionPolicy(idle_timeout_s=s.idle_timeout_s, idle_warning_s=s.idle_warning_s,
                         absolute_limit_s=s.absolute_limit_s, full_auth_every_signature=s.full_auth_every_signature,
                         totp_at_first_signature=config.auth.totp_at_first_signature)


def shipped_recipes() -> list[Path]:
    return sorted((defaults_dir() / "recipes").glob("*.toml"))


class CentralDevices:
    """The device registrations of a central store, as the DeviceAdmin service reads them."""

    def __init__(self, central) -> None:
        self.central = central

    def devices(self):
        from kiosk.services.devices import DeviceRow

        return [DeviceRow.from_registry(row) for row in self.central.devices()]


def ui_services(kiosk: Kiosk, *, sync=None, central=None):
    """The three service facades the screens use (shell, batch work, admin/audit)."""
    from kiosk.services.audit_view import AuditBrowser
    from kiosk.services.devices import DeviceAdmin
    from kiosk.ui_adapter import UiServices, UiWork
    from kiosk.ui_admin import UiAdmin
    from storage.audit_local import LocalAuditSource

    configured = central is not None or sync is not None or bool(kiosk.config.sync.central_url)
    services = UiServices(kiosk, sync.status if sync is not None else None, central_configured=configured)
    devices = DeviceAdmin(kiosk.store, kiosk.auth, CentralDevices(central) if central is not None else None)
    audit = AuditBrowser(LocalAuditSource(kiosk.store.path), kiosk.auth, kiosk.store, kiosk.clock,
                         kiosk.data_dir / "exports")
    return services, UiWork(kiosk), UiAdmin(kiosk, devices, audit)


def make_app(kiosk: Kiosk, *, banner=None, idle_check_s: float = 1.0, sync=None, central=None,
             device_poll_s: float = 2.0):
    """The one factory for the Textual app: `kiosk run`, `kiosk demo` and the UI tests use it.

    ``sync`` is a SyncService whose status the status bar shows (a SyncWorker runs it);
    ``central`` is the central store whose device registrations the admin screen lists.
    With either, this terminal must be approved before anyone can log in.
    """
    from screens.app import KioskApp
    from screens.worklist import WorklistScreen

    services, work, admin = ui_services(kiosk, sync=sync, central=central)
    kiosk.session.restart()

    class _App(KioskApp):
        """In the demo, the banner with demo credentials sits on top of every full screen."""

        def on_mount(self) -> None:
            super().on_mount()
            self._add_banner(self.lock_screen)

        def _add_banner(self, screen) -> None:
            if banner is not None:
                from screens.demo_banner import DemoBanner

                screen.mount(DemoBanner(banner))

        def push_screen(self, screen, *args, **kwargs):
            from textual.screen import ModalScreen

            result = super().push_screen(screen, *args, **kwargs)
            if banner is not None and not isinstance(screen, ModalScreen) and not screen.query("DemoBanner"):
                screen.call_after_refresh(self._add_banner, screen)
            return result

    return _App(clock=kiosk.clock, session_policy=kiosk.config.session, services=services,
                on_exit_request=services.record_exit, idle_check_s=idle_check_s, device_poll_s=device_poll_s,
                home_factory=lambda session: WorklistScreen(session, services, work, kiosk.clock, admin=admin))


def central_sync(kiosk: Kiosk, url: str, *, central=None):
    """The sync service for ``url`` (one central store object, reused by the worker thread)."""
    from storage.central import CentralStore

    central = central or CentralStore(url, kiosk.clock)
    return central, sync_service(kiosk.store, kiosk.directory, kiosk.config, kiosk.clock, lambda: central)


def sync_service(store: LocalStore, directory: LocalDirectory, config: KioskConfig, clock: Clock, connect):
    """The one way a kiosk's SyncService is built (app, CLI and tests): pin, receipts, pull, clock trust."""
    from kiosk.services.sync import SyncService
    from storage.directory_pull import LocalPuller
    from storage.sync_state import LocalSyncState

    return SyncService(store, connect, clock, batch_size=config.sync.batch_size, interval_s=config.sync.interval_s,
                       directory_reader=directory, puller=LocalPuller(store), max_skew_s=config.clock.max_skew_s,
                       state=LocalSyncState(store), alert_offline_after_s=config.sync.alert_offline_after_s)
