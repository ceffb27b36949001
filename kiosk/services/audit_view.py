"""The audit viewer's use cases: page through the audit trail, open one record, export a view.

Pages are read with keyset cursors from the store, a page at a time, so the
viewer never holds more than one page of a trail of any length, and every
record shown has had its signature checked (an audit trail that shows a
forged record as genuine is worse than none). Reading it is limited to the
roles that review it; exporting a copy is itself recorded (who exported what,
with which filters), because a copy leaving the system is an event an
inspector asks about.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from kiosk.domain.audit import AuditRow, audit_row
from kiosk.domain.clock import Clock
from kiosk.domain.exports import AuditFilter
from kiosk.domain.identity import InvalidUserId, normalize_user_id
from kiosk.domain.keys import b64url
from kiosk.domain.records import Record, RecordError, check_signature, parse_raw
from kiosk.services.audit_export import AuditSource, ExportError, matching, parse_bound, why_nothing, write_csv
from kiosk.services.auth import Actor, AuthService
from kiosk.services.ports import RecordWriter

REVIEW_ROLES = ("admin", "qa", "supervisor")
PAGE_SIZE = 50
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\Z")

Cursor = tuple[str, str, int]  # (ts, chain, seq) of a record


class AuditQueryError(ValueError):
    """A filter cannot be used as typed; the message names the field and the expected form."""


@dataclass(frozen=True)
class AuditQuery:
    """The filters as a person typed them (all optional)."""

    user: str = ""
    batch: str = ""
    types: str = ""   # one or more record types, separated by commas or spaces
    start: str = ""   # UTC date or date-time, inclusive
    end: str = ""     # UTC date-time (exclusive), or a date (that whole day included)
    device: str = ""  # a device id (its chains of every epoch), or one chain


def to_filter(query: AuditQuery) -> AuditFilter:
    """Validate what was typed; every refusal says which field and what form works."""
    user = None
    if query.user.strip():
        try:
            user = normalize_user_id(query.user)
        except InvalidUserId as exc:
            raise AuditQueryError(f"User: {exc}") from None
    batch = query.batch.strip() or None
    if batch is not None and len(batch) > 40:
        raise AuditQueryError("Batch: a batch id is at most 40 characters")
    types = tuple(t for t in re.split(r"[,\s]+", query.types.strip().lower()) if t)
    bad = next((t for t in types if not _TYPE.match(t)), None)
    if bad is not None:
        raise AuditQueryError(f"Type: {bad!r} is not a record type (e.g. step.signed, session.login)")
    try:
        start = parse_bound(query.start.strip() or None, "From")
        end_text = query.end.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", end_text):
            # A date alone means "up to and including that day".
            try:
                end_text = (dt.date.fromisoformat(end_text) + dt.timedelta(days=1)).isoformat()
            except ValueError:
                raise ExportError(f"To {end_text!r} is not a date (YYYY-MM-DD)") from None
        end = parse_bound(end_text or None, "To")
    except ExportError as exc:
        raise AuditQueryError(str(exc).replace("'", "")) from None
    if start and end and start >= end:
        raise AuditQueryError("From must be earlier than To")
    return AuditFilter(start=start, end=end, user=user, batch=batch, device=query.device.strip() or None,
                       types=types)


@dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...]
    has_older: bool
    has_newer: bool

    @property
    def first(self) -> Cursor | None:
        return _cursor(self.rows[0]) if self.rows else None

    @property
    def last(self) -> Cursor | None:
        return _cursor(self.rows[-1]) if self.rows else None


@dataclass(frozen=True)
class AuditDetail:
    record: Record
    hash_hex: str
    signature_b64: str
    verified: bool
    problem: str = ""


class RecordSource(AuditSource, Protocol):
    def record(self, chain: str, seq: int) -> tuple[bytes, bytes, bytes] | None:
        """One record's (raw, sig, stored hash), or None."""
        ...


def _cursor(row: AuditRow) -> Cursor:
    return (row.ts_utc, row.device, row.seq)


class AuditBrowser:
    def __init__(self, source: RecordSource, auth: AuthService, writer: RecordWriter, clock: Clock,
                 export_dir: Path, *, page_size: int = PAGE_SIZE) -> None:
        self.source = source
        self.auth = auth
        self.writer = writer
        self.clock = clock
        self.export_dir = Path(export_dir)
        self.page_size = page_size

    def _allowed(self, actor: Actor) -> None:
        self.auth.require_role(actor, *REVIEW_ROLES)

    # -- pages -----------------------------------------------------------
    def newest(self, actor: Actor, flt: AuditFilter) -> AuditPage:
        """The latest page (the viewer opens on the most recent events)."""
        return self.older(actor, flt, None)

    def older(self, actor: Actor, flt: AuditFilter, before: Cursor | None) -> AuditPage:
        self._allowed(actor)
        end = before or ("\U0010ffff", "", 0)
        rows = self._take(matching(self.source, flt, before=end), self.page_size + 1)
        has_older = len(rows) > self.page_size
        rows = rows[: self.page_size]
        rows.reverse()
        return AuditPage(tuple(rows), has_older, before is not None)

    def newer(self, actor: Actor, flt: AuditFilter, after: Cursor) -> AuditPage:
        self._allowed(actor)
        rows = self._take(matching(self.source, flt, after=after), self.page_size + 1)
        has_newer = len(rows) > self.page_size
        return AuditPage(tuple(rows[: self.page_size]), True, has_newer)

    def oldest(self, actor: Actor, flt: AuditFilter) -> AuditPage:
        return replace(self.newer(actor, flt, ("", "", 0)), has_older=False)

    def why_nothing(self, actor: Actor, flt: AuditFilter) -> str:
        """Why nothing matched, when what a filter names is not in the store (a typo reads as an empty trail)."""
        self._allowed(actor)
        return why_nothing(self.source, flt)

    def _take(self, items, n: int) -> list[AuditRow]:
        out: list[AuditRow] = []
        for record, _raw, _sig, digest in items:
            out.append(audit_row(record, digest.hex()))
            if len(out) >= n:
                break
        return out

    # -- one record --------------------------------------------------------
    def detail(self, actor: Actor, chain: str, seq: int) -> AuditDetail:
        self._allowed(actor)
        found = self.source.record(chain, seq)
        if found is None:
            raise AuditQueryError(f"record {chain} #{seq} is not in this store")
        raw, sig, digest = found
        record, computed = parse_raw(raw)
        problem = ""
        try:
            check_signature(record, raw, computed, sig, self.source.chain_key(chain))
            if computed != digest:
                problem = "the stored hash differs from the record bytes; run `kiosk verify`"
        except RecordError as exc:
            problem = f"{exc.reason}: {exc.detail}"
        return AuditDetail(record, computed.hex(), b64url(sig), not problem, problem)

    # -- export ------------------------------------------------------------
    def export_csv(self, actor: Actor, flt: AuditFilter) -> tuple[Path, int]:
        """Write the filtered view to a CSV file in the export folder; the export is recorded."""
        self._allowed(actor)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S%fZ")
        out = self.export_dir / f"audit-{stamp}.csv"
        try:
            count = write_csv((audit_row(r, d.hex()) for r, _, _, d in matching(self.source, flt)), out)
        except OSError as exc:
            raise ExportError(f"{out}: cannot be written ({exc.strerror}); check the disk and try again") from None
        body: dict[str, Any] = {"actor": actor.body(), "format": "csv", "file": out.name, "rows": count,
                                "filters": flt.describe(), "reason": "audit trail export from the audit viewer"}
        self.writer.append("audit.exported", body)
        return out, count
