"""Plain descriptions shared by the exports and the stores that feed them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AuditFilter:
    start: str | None = None  # record ts bounds, inclusive start, exclusive end
    end: str | None = None
    user: str | None = None
    batch: str | None = None
    device: str | None = None
    types: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, ())}


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
