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
    url: Annotated[Optional[str], typer.Option("--url", help="Export the central ledger instead (all devices).")] = None,
) -> None:
    """Write an inspector bundle: raw signed records, device keys, anchors and a standalone verifier."""
    from kiosk.cli import existing_store, fail, output_file
    from kiosk.services.bundle import write_bundle
    from kiosk.system_clock import SystemClock
    from kiosk.domain.clock import format_ts
    from storage.bundle_local import LocalBundleSource
    from storage.local_store import DB_FILE

    if out.suffix != ".zip":
        raise fail("--out must name a .zip file")
    if url:
        from kiosk.cli_central import open_central
        from storage.bundle_central import CentralBundleSource
        from kiosk.domain.central_url import without_password

        source = CentralBundleSource(open_central(url))
        filters = {"source": "central", "url": without_password(url)}
    else:
        db = existing_store(data_dir) / DB_FILE
        source = LocalBundleSource(db)
        filters = {"source": "local", "data_dir": str(db.parent)}
    try:
        with output_file(out):
            hashes = write_bundle(out, source, exported_at=format_ts(SystemClock().now()), filters=filters)
    finally:
        source.close()
    chains = sum(1 for n in hashes if n.startswith("chains/"))
    typer.echo(f"wrote {out}: {chains} chain(s); verify with: python3 verify_bundle.py {out.name}")


@app.command()
def audit(
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, json (raw signed records) or pdf.")] = "csv",
    start: Annotated[Optional[str], typer.Option("--from", help="From this UTC date/time (inclusive).")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="Up to this UTC date-time (exclusive), or through "
                                                              "this UTC date (the whole day included).")] = None,
    user: Annotated[Optional[str], typer.Option(help="Only records by or about this user id (any case).")] = None,
    batch: Annotated[Optional[str], typer.Option(help="Only records of this batch.")] = None,
    device: Annotated[Optional[str], typer.Option(help="Only records of this device id.")] = None,
    type_: Annotated[Optional[list[str]], typer.Option("--type", help="Only this record type (repeatable).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Local store to export.")] = None,
) -> None:
    """Export the audit trail: who, what (old/new, reason), when (UTC + site time), where, record hash."""
    from kiosk.cli import existing_store, fail, output_file
    from kiosk.domain.audit import audit_row
    from kiosk.services import audit_export as ax
    from kiosk.services.audit_view import AuditQuery, AuditQueryError, to_filter
    from storage.audit_local import LocalAuditSource
    from storage.local_store import DB_FILE

    if fmt not in ax.FORMATS:
        raise fail(f"--format must be one of {', '.join(ax.FORMATS)}")
    try:  # read as the audit viewer reads its filters: one meaning for a filter, wherever it is typed
        flt = to_filter(AuditQuery(user or "", batch or "", ",".join(type_ or ()), start or "", end or "",
                                   device or ""))
    except AuditQueryError as exc:
        raise fail(str(exc))
    db = existing_store(data_dir) / DB_FILE
    source = LocalAuditSource(db)
    try:
        items = ax.matching(source, flt)
        with output_file(out):
            if fmt == "json":
                count = ax.write_jsonl(((raw, sig) for _, raw, sig, _ in items), out)
            elif fmt == "csv":
                count = ax.write_csv((audit_row(r, d.hex()) for r, _, _, d in items), out)
            else:
                count = ax.write_pdf((audit_row(r, d.hex()) for r, _, _, d in items), out,
                                     title="Audit trail", footer=f"Exported from {db}", filters=flt)
        why = ax.why_nothing(source, flt) if count == 0 else ""
    except ax.ExportError as exc:
        raise fail(str(exc), code=1)
    finally:
        source.close()
    typer.echo(f"wrote {out}: {count} record(s)")
    if why:
        typer.echo(f"note: {why}", err=True)


@app.command("batch")
def batch_report(
    batch_id: Annotated[str, typer.Argument(help="The batch id.")],
    out: Annotated[Path, typer.Option("--out", help="The PDF to write.")],
    fmt: Annotated[str, typer.Option("--format", help="pdf")] = "pdf",
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Local store to read.")] = None,
) -> None:
    """The executed batch record: steps, values, deviations, corrections, signatures; chain head and verification."""
    from kiosk.cli import existing_store, fail, output_file
    from kiosk.domain import batches as bx
    from kiosk.domain.clock import format_ts
    from kiosk.services.batch_report import write_batch_pdf
    from kiosk.system_clock import SystemClock
    from storage.directory_local import LocalDirectory
    from storage.local_store import DB_FILE
    from storage.sqlite import sqlite_engine
    from storage.verify_local import verify_local_store

    if fmt != "pdf":
        raise fail("--format must be pdf")
    directory = existing_store(data_dir)
    report = verify_local_store(directory)
    engine = sqlite_engine(directory / DB_FILE, write=False)
    try:
        reader = LocalDirectory(engine)
        batch = reader.get(bx.BATCH, batch_id)
        if batch is None:
            alike = bx.ids_alike(reader.batch_ids(), batch_id)
            if len(alike) > 1:
                raise fail(f"batches {', '.join(alike)} differ only in case; give the id exactly")
            if not alike:
                raise fail(f"no batch {batch_id!r} in this store")
            batch = reader.get(bx.BATCH, alike[0])
        recipe = reader.get(bx.RECIPE, batch["recipe_key"])
        if recipe is None:
            raise fail(f"batch {batch_id!r} names recipe {batch['recipe_key']!r}, which this store does not hold")
        batch = bx.read_view(batch, bx.recipe_from_doc(recipe), reader.get_many)
    finally:
        engine.dispose()
    head = report.chains[-1].head_hash[:16] + "…" if report.chains else "-"
    verified = (f"OK, {report.records} records verified" if report.ok
                else f"FAILED at {report.error.where}: {report.error.reason}")
    with output_file(out):
        write_batch_pdf(batch, recipe, out, head=head, verified=verified, printed_at=format_ts(SystemClock().now()))
    typer.echo(f"wrote {out}")


@app.command("access-review")
def access_review(
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="md or csv.")] = "md",
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Local store to read.")] = None,
) -> None:
    """Users, roles, status, last login, failed attempts, suspensions, unlocks; devices (Annex 11 §11)."""
    import json

    from kiosk.cli import existing_store, fail, output_file
    from kiosk.domain.clock import format_ts
    from kiosk.domain.records import parse_raw
    from kiosk.services.access_review import render, review_rows
    from kiosk.services.atomic_file import written_atomically
    from kiosk.system_clock import SystemClock
    from storage.audit_local import LocalAuditSource
    from storage.directory_local import LocalDirectory
    from storage.local_store import DB_FILE
    from kiosk.domain.exports import AuditFilter

    if fmt not in ("md", "csv"):
        raise fail("--format must be md or csv")
    db = existing_store(data_dir) / DB_FILE
    source = LocalAuditSource(db)
    try:
        users = list(LocalDirectory(source.engine).all("user"))
        with source.engine.connect() as conn:
            devices = [{"chain": chain, "status": json.loads(doc)["status"], "since": json.loads(doc)["since"]}
                       for chain, doc in conn.exec_driver_sql("SELECT key, doc FROM directory WHERE kind = 'device'")]
        records = (parse_raw(raw)[0] for raw, _, _ in source.iter_raw(
            AuditFilter(types=("auth.failed", "account.suspended", "account.unlocked"))))
        text = render(review_rows(users, records), devices, fmt, format_ts(SystemClock().now()))
    finally:
        source.close()
    with output_file(out), written_atomically(out, "w", encoding="utf-8") as fh:
        fh.write(text)
    typer.echo(f"wrote {out}: {len(users)} user(s)")
