"""Audit-trail exports: CSV for spreadsheets, JSON Lines of the raw signed records, PDF to print.

Records are streamed from the store and written as they come, so an export of
millions of records uses the memory of one batch.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from kiosk.domain.audit import AuditRow
from kiosk.domain.exports import AuditFilter
from kiosk.domain.clock import UTC, format_ts, site_time, utc_time
from kiosk.domain.keys import b64url
from kiosk.domain.keys import PublicKey
from kiosk.domain.records import Record, RecordError, check_signature, parse_raw, where_of
from kiosk.services.atomic_file import written_atomically

FORMATS = ("csv", "json", "pdf")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportError(Exception):
    """The export cannot be produced as asked; the message says why."""


def parse_bound(text: str | None, option: str) -> str | None:
    """Accept a date (YYYY-MM-DD) or a date-time; bounds are UTC."""
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"{option} {text!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM:SSZ)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_ts(moment)


class AuditSource(Protocol):
    def iter_raw(self, flt: AuditFilter, after: tuple[str, str, int] | None = None,
                 before: tuple[str, str, int] | None = None) -> Iterator[tuple[bytes, bytes, bytes]]:
        """(raw, sig, hash) of records matching at least the time/type/device bounds, in time order.

        ``after`` / ``before`` are (ts, chain, seq) keyset cursors; with ``before``
        the records come newest first.
        """
        ...

    def chain_key(self, chain: str) -> PublicKey | None:
        """The key the chain opened with (its first record)."""
        ...

    def record_types(self) -> set[str]:
        """Every record type the store holds a record of."""
        ...

    def batches_named(self, batch_id: str) -> list[str]:
        """The ids of the batches this store knows whose id is ``batch_id`` in any case."""
        ...


def why_nothing(source: AuditSource, flt: AuditFilter) -> str:
    """Why a filter found nothing, when the reason is the filter itself: a mistyped type or batch id must
    not read as "no such events". Empty when what the filter names exists in the store."""
    held = source.record_types() if flt.types else set()
    absent = [t for t in flt.types if t not in held]
    if absent:
        names = ", ".join(repr(t) for t in absent)
        alike = [m for t in absent for m in difflib.get_close_matches(t, sorted(held), n=1, cutoff=0.75)]
        if alike:
            return f"no record in this store has type {names}; did you mean {', '.join(repr(m) for m in alike)}?"
        return (f"no record in this store has type {names}: none was written here, or it is misspelled "
                "(types are written like step.signed, witness.signed, session.login, auth.failed)")
    if flt.batch is not None:
        named = source.batches_named(flt.batch)
        if not named:
            return f"this store has no batch {flt.batch!r}; check the id"
        if len(named) > 1:
            return f"batches {', '.join(named)} differ only in case; give the id exactly"
    return ""


def _batch_as_stored(source: AuditSource, flt: AuditFilter) -> AuditFilter:
    """The filter with its batch id as the store spells it. Batch ids are compared without case (a terminal
    refuses a second batch that differs only in case), so "pb-2026-001" finds PB-2026-001's records, as the
    worklist's Go to batch does; only ids that two batches share in different cases must be exact."""
    if flt.batch is None:
        return flt
    named = source.batches_named(flt.batch)
    return replace(flt, batch=named[0]) if len(named) == 1 and flt.batch != named[0] else flt


def matching(source: AuditSource, flt: AuditFilter, *, after: tuple[str, str, int] | None = None,
             before: tuple[str, str, int] | None = None) -> Iterator[tuple[Record, bytes, bytes, bytes]]:
    """Records that match, each with its signature checked: an export never repeats a forgery."""
    flt = _batch_as_stored(source, flt)
    keys: dict[str, PublicKey | None] = {}
    rows = source.iter_raw(flt) if after is None and before is None else source.iter_raw(flt, after, before)
    for raw, sig, digest in rows:
        record, computed = parse_raw(raw)
        if record.chain not in keys:
            keys[record.chain] = source.chain_key(record.chain)
        try:
            check_signature(record, raw, computed, sig, keys[record.chain])
        except RecordError as exc:
            raise ExportError(f"{exc}; nothing was exported. Run `kiosk verify` and report it to QA.") from None
        if computed != digest:
            raise ExportError(f"{where_of(record.chain, record.seq)}: stored hash differs; run `kiosk verify`.")
        body = record.body
        if flt.user is not None:
            who = body.get("actor") if isinstance(body.get("actor"), dict) else {}
            subject = body.get("target") if isinstance(body.get("target"), dict) else {}
            if flt.user not in (who.get("user_id"), subject.get("id") if subject.get("kind") == "user" else None):
                continue
        if flt.batch is not None and body.get("batch_id") != flt.batch:
            continue
        yield record, raw, sig, computed


def spreadsheet_safe(value: object) -> str:
    """Neutralise formula injection: a cell that starts like a formula is prefixed with '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(rows: Iterable[AuditRow], out: Path) -> int:
    count = 0
    with written_atomically(out, "w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(AuditRow.FIELDS)
        for row in rows:
            writer.writerow([spreadsheet_safe(v) for v in row.values()])
            count += 1
    return count


def write_jsonl(items: Iterable[tuple[bytes, bytes]], out: Path) -> int:
    """Record lines; each record's bytes are copied verbatim from the store."""
    count = 0
    with written_atomically(out) as fh:
        for raw, sig in items:
            fh.write(b'{"r":' + raw + b',"s":"' + b64url(sig).encode() + b'"}\n')
            count += 1
    return count


def write_pdf(rows: Iterable[AuditRow], out: Path, *, title: str, footer: str, filters: AuditFilter) -> int:
    from kiosk.services.pdf_report import Report

    pdf = Report(title, footer)
    pdf.paragraph("Filters: " + filters.text())
    header = ["when (UTC / site)", "device #seq", "who", "what", "old → new", "reason", "hash"]
    body = []
    for row in rows:
        body.append([
            # Printed for people: times as the screens show them (the CSV and JSON keep the stored forms).
            f"{utc_time(row.ts_utc)}\n{site_time(row.ts_utc, row.zone)} {row.zone}",
            f"{row.device} #{row.seq}",
            f"{row.name} ({row.user_id})\n{row.role}" if row.user_id else "system",
            f"{row.type}\n{row.target}".strip(),
            f"{row.old or '(none)'} → {row.new or '(none)'}" if (row.old or row.new) else "",
            row.reason,
            row.hash[:16],
        ])
    pdf.table(header, body, [34, 24, 30, 30, 28, 22, 14], size=6.5)
    pdf.save(out)
    return len(body)
