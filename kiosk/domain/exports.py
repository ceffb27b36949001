"""Plain descriptions shared by the exports and the stores that feed them."""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.domain.clock import utc_time


@dataclass(frozen=True)
class AuditFilter:
    start: str | None = None  # record ts bounds, inclusive start, exclusive end
    end: str | None = None
    user: str | None = None
    batch: str | None = None
    device: str | None = None
    types: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict:
        """The filters set, as a record's body holds them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items() if v not in (None, ())}

    def text(self) -> str:
        """The filters set, as a printout's reader reads them."""
        parts = []
        if self.start:
            parts.append(f"from {utc_time(self.start)}")
        if self.end:
            parts.append(f"before {utc_time(self.end)}")
        parts += [f"{name} {value}" for name, value in (("user", self.user), ("batch", self.batch),
                                                        ("device", self.device)) if value]
        if self.types:
            parts.append(("type " if len(self.types) == 1 else "types ") + ", ".join(self.types))
        return " · ".join(parts) or "none"


@dataclass(frozen=True)
class BundleDevice:
    device_id: str
    epoch: int
    kid: str
    public_key: str  # base64url of the raw 32 bytes
    status: str
    registration_record: str | None = None
    approval_record: str | None = None
    revocation_record: str | None = None
