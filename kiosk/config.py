"""Kiosk policy, loaded once into a frozen, validated object.

A wrong policy must never half-apply: a bad file stops start-up and the
message names the file, the key and the allowed range, so a site admin can
fix it without reading code. Defaults are the safe values.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kiosk.domain.central_url import central_url_problem, without_password
from kiosk.domain.clock import InvalidTimeZone, check_zone
from kiosk.resources import defaults_dir



class ConfigError(Exception):
    """The configuration cannot be used; the message says where and how to fix it."""


def _range(lo: int | None = None, hi: int | None = None) -> dict[str, Any]:
    return {"lo": lo, "hi": hi}


@dataclass(frozen=True)
class SiteConfig:
    name: str = field(default="Demo site", metadata={"len": (1, 80)})
    timezone: str = "UTC"
    max_idle_timeout_s: int = field(default=900, metadata=_range(30, 3600))


@dataclass(frozen=True)
class DeviceConfig:
    id: str = field(default="", metadata={"len": (0, 63)})
    location: str = field(default="", metadata={"len": (0, 80)})  # e.g. "Suite 3, weighing booth"


@dataclass(frozen=True)
class SessionConfig:
    idle_timeout_s: int = field(default=300, metadata=_range(30, 3600))
    idle_warning_s: int = field(default=60, metadata=_range(5, 600))
    absolute_limit_s: int = field(default=43200, metadata=_range(300, 86400))
    full_auth_every_signature: bool = False


@dataclass(frozen=True)
class AuthConfig:
    lockout_threshold: int = field(default=5, metadata=_range(3, 100))
    delay_from_failure: int = field(default=3, metadata=_range(1, 100))
    delay_base_s: int = field(default=2, metadata=_range(0, 60))
    delay_max_s: int = field(default=30, metadata=_range(0, 600))
    failure_window_h: int = field(default=24, metadata=_range(1, 720))
    totp_at_login: bool = True
    totp_at_first_signature: bool = True


@dataclass(frozen=True)
class PasswordConfig:
    min_length: int = field(default=12, metadata=_range(8, 64))
    min_length_with_totp: int = field(default=8, metadata=_range(8, 64))
    max_length: int = field(default=128, metadata=_range(64, 1024))
    history: int = field(default=5, metadata=_range(0, 24))
    max_age_days: int = field(default=0, metadata=_range(0, 3650))
    argon2_time_cost: int = field(default=3, metadata=_range(1, 20))
    argon2_memory_kib: int = field(default=65536, metadata=_range(1024, 4 * 1024 * 1024))
    argon2_parallelism: int = field(default=4, metadata=_range(1, 16))


@dataclass(frozen=True)
class SyncConfig:
    central_url: str = field(default="", metadata={"len": (0, 500)})
    interval_s: int = field(default=30, metadata=_range(5, 3600))
    batch_size: int = field(default=500, metadata=_range(1, 10000))
    # An outage this long raises a warning alert on the terminal (what is signed meanwhile exists only here).
    alert_offline_after_s: int = field(default=3600, metadata=_range(300, 604800))


@dataclass(frozen=True)
class ClockConfig:
    max_skew_s: int = field(default=120, metadata=_range(1, 86400))
    refuse_signing_on_bad_clock: bool = True


@dataclass(frozen=True)
class CheckpointConfig:
    every_records: int = field(default=256, metadata=_range(2, 100000))
    every_s: int = field(default=300, metadata=_range(10, 86400))
    # Nothing written for this long: a checkpoint at the next sync, so the central store still hears from an
    # idle terminal (`kiosk central status`, the Devices screen's "Last heard").
    idle_every_s: int = field(default=14400, metadata=_range(600, 43200))


@dataclass(frozen=True)
class KioskConfig:
    site: SiteConfig = SiteConfig()
    device: DeviceConfig = DeviceConfig()
    session: SessionConfig = SessionConfig()
    auth: AuthConfig = AuthConfig()
    password: PasswordConfig = PasswordConfig()
    sync: SyncConfig = SyncConfig()
    clock: ClockConfig = ClockConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    source: str = field(default="<defaults>", compare=False)

    def tables(self) -> dict[str, dict[str, Any]]:
        """The settings as the file's tables hold them: ``{"session": {"idle_timeout_s": 300, ...}, ...}``."""
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in fields(self) if f.name != "source"}

    def settings(self) -> dict[str, Any]:
        """Every setting in effect, as ``{"session.idle_timeout_s": 300, ...}``: what the audit trail records
        (a password in the central URL shown as ***)."""
        flat = {f"{name}.{key}": value for name, table in self.tables().items() for key, value in table.items()}
        flat["sync.central_url"] = without_password(flat["sync.central_url"])
        return flat

    def replace(self, **sections: Any) -> "KioskConfig":
        """A copy with some keys changed, validated like a file: ``replace(session={"idle_timeout_s": 60})``."""
        data = self.tables()
        for section, values in sections.items():
            data.setdefault(section, {}).update(values)
        return parse_config(data, self.source)


def _type_name(tp: Any) -> str:
    return {int: "an integer", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _section(cls: type, raw: Any, source: str, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key '{name}.{key}'; allowed keys in [{name}]: {', '.join(known)}"
            )
    values: dict[str, Any] = {}
    for key, spec in known.items():
        if key not in raw:
            continue
        value = raw[key]
        tp = {"int": int, "bool": bool, "str": str}[spec.type] if isinstance(spec.type, str) else spec.type
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
        if not ok:
            raise ConfigError(f"{source}: '{name}.{key}' must be {_type_name(tp)}, got {value!r}")
        meta = spec.metadata
        if "lo" in meta and not (meta["lo"] <= value <= meta["hi"]):
            raise ConfigError(
                f"{source}: '{name}.{key}' = {value} is out of range; allowed {meta['lo']} .. {meta['hi']}"
            )
        if "len" in meta and not (meta["len"][0] <= len(value) <= meta["len"][1]):
            raise ConfigError(
                f"{source}: '{name}.{key}' must be {meta['len'][0]} to {meta['len'][1]} characters long"
            )
        values[key] = value
    return cls(**values)


def parse_config(data: dict[str, Any], source: str) -> KioskConfig:
    sections = {f.name: f for f in fields(KioskConfig) if f.name != "source"}
    for name in data:
        if name not in sections:
            raise ConfigError(f"{source}: unknown section [{name}]; allowed: {', '.join(sections)}")
    built = {
        name: _section(type(f.default), data.get(name, {}), source, name) for name, f in sections.items()
    }
    config = KioskConfig(**built, source=source)
    _cross_checks(config)
    return config


def _cross_checks(c: KioskConfig) -> None:
    src = c.source
    try:
        check_zone(c.site.timezone)
    except InvalidTimeZone as exc:
        raise ConfigError(f"{src}: 'site.timezone': {exc}") from None
    if c.session.idle_timeout_s > c.site.max_idle_timeout_s:
        raise ConfigError(
            f"{src}: 'session.idle_timeout_s' = {c.session.idle_timeout_s} is above the site maximum; "
            f"allowed 30 .. {c.site.max_idle_timeout_s} (site.max_idle_timeout_s)"
        )
    if c.session.idle_warning_s >= c.session.idle_timeout_s:
        raise ConfigError(
            f"{src}: 'session.idle_warning_s' = {c.session.idle_warning_s} must be less than "
            f"session.idle_timeout_s ({c.session.idle_timeout_s})"
        )
    if c.session.absolute_limit_s < c.session.idle_timeout_s:
        raise ConfigError(f"{src}: 'session.absolute_limit_s' must be at least session.idle_timeout_s")
    problem = central_url_problem(c.sync.central_url) if c.sync.central_url else None
    if problem is not None:
        raise ConfigError(f"{src}: 'sync.central_url': {problem}")
    if c.auth.delay_from_failure >= c.auth.lockout_threshold:
        raise ConfigError(
            f"{src}: 'auth.delay_from_failure' = {c.auth.delay_from_failure} must be below "
            f"auth.lockout_threshold ({c.auth.lockout_threshold})"
        )
    if c.password.min_length_with_totp > c.password.min_length:
        raise ConfigError(f"{src}: 'password.min_length_with_totp' must not exceed password.min_length")
    if c.password.max_length < c.password.min_length:
        raise ConfigError(f"{src}: 'password.max_length' must be at least password.min_length")


def load_config(path: Path | None = None) -> KioskConfig:
    """Load ``path`` (or the shipped defaults). Raises ConfigError naming the file."""
    path = Path(path) if path else defaults_dir() / "kiosk.toml"
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source)
