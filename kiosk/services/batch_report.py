"""The executed batch record as a PDF (Annex 11 §8, 21 CFR 11.50): every step, value, deviation,
correction and signature manifestation, with a footer naming the chain head and the verification
result, so a printout says whether the data it shows was intact when printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kiosk.domain import batches as bx
from kiosk.domain.clock import site_time, utc_time
from kiosk.domain.recipes import describe_changes
from kiosk.services.pdf_report import Report


def _when(ts: str, tz: str) -> str:
    return f"{site_time(ts, tz)} ({tz}; {utc_time(ts)})"


def write_batch_pdf(batch: dict[str, Any], recipe_doc: dict[str, Any], out: Path, *, head: str, verified: str,
                    printed_at: str) -> None:
    recipe = bx.recipe_from_doc(recipe_doc)
    footer = (f"Batch {batch['batch_id']} · recipe {recipe.key} (sha256 {recipe.content_hash[:16]}…) · "
              f"chain head {head} · verification: {verified} · printed {utc_time(printed_at)}")
    pdf = Report(f"Executed batch record {batch['batch_id']}: {recipe.title}", footer)
    statuses = bx.step_statuses(recipe, batch)
    status = bx.batch_status(recipe, batch, statuses).replace("_", " ")
    pdf.paragraph(f"Product {recipe.product} · recipe {recipe.key} · started {utc_time(batch['created_at'])} "
                  f"by {batch['created_by']} · batch status: {status}")
    cancelled = batch.get("cancelled")
    if cancelled:
        pdf.paragraph(f"CANCELLED by {cancelled['name']} ({cancelled['by']}), role {cancelled['role']}, "
                      f"{utc_time(cancelled['at'])}; reason: {cancelled['reason']}. No signature or correction is applied "
                      "to it after its cancellation.")
    review = bx.exceptions(recipe, batch)
    pdf.heading(f"Review by exception: {len(review) or 'none'}")
    if review:
        for line in review:
            pdf.paragraph(f"- {line}")
    else:
        pdf.paragraph("No value outside its limits, no comment or deviation, no correction, no signature taken back.")
    for n, step in enumerate(recipe.steps, start=1):
        state = batch["steps"].get(step.id) or {}
        status = statuses[step.id]
        pdf.heading(f"{n}. {step.title}   [{status.replace('_', ' ')}]")
        values = state.get("values", {})
        rows = []
        for f in step.fields:
            limits = f"{f.min} .. {f.max}" if f.min is not None or f.max is not None else ""
            rows.append([f.label, f"{values.get(f.name, '')} {f.unit}".strip(), limits])
        if rows:
            pdf.table(["Field", "Entered value", "Limits"], rows, [70, 60, 52])
        for sig in state.get("signatures", []):
            mark = "" if sig["valid"] else f"   INVALIDATED: {sig.get('invalidated_reason', 'by a later correction')}"
            text = (f"{sig['meaning']}: {sig['name']} ({sig['user_id']}), role {sig['role']}, "
                    f"{_when(sig['signed_at'], sig['tz'])}; content sha256 {sig['content_hash'][:16]}…{mark}")
            if sig.get("comment") or sig.get("deviation_ref"):
                text += f"\n   comment: {sig.get('comment', '')}; deviation: {sig.get('deviation_ref', '')}"
            pdf.paragraph(text)
        for c in state.get("corrections", []):
            pdf.paragraph(f"Correction {utc_time(c['at'])} by {c['by']} ({c.get('role', '')}): "
                          f"{describe_changes(step, c['old'], c['new'])}; reason: {c['reason']}")
        if not state.get("signatures"):
            pdf.paragraph("Not signed.")
    pdf.save(out)
