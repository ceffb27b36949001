"""Periodic access review (Annex 11 §11): who can do what, who used it, what went wrong.

Counts come from the records themselves (failed attempts, suspensions, unlocks),
the current state from the directory derived from them.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Any, Iterable

from kiosk.domain.clock import utc_text
from kiosk.domain.records import Record

COLUMNS = ("user_id", "printed_name", "roles", "status", "last_login", "failed_attempts", "suspensions",
           "unlocks", "created_at", "badge")


def review_rows(users: Iterable[dict[str, Any]], records: Iterable[Record]) -> list[dict[str, str]]:
    failed, suspended, unlocked = Counter(), Counter(), Counter()
    for record in records:
        about = (record.body.get("target") or {}).get("id")
        if record.type == "auth.failed":
            failed[record.body.get("attempted_user_id")] += 1
        elif record.type == "account.suspended":
            suspended[about] += 1
        elif record.type == "account.unlocked":
            unlocked[about] += 1
    rows = []
    for u in users:
        uid = u["user_id"]
        rows.append({"user_id": uid, "printed_name": u["printed_name"], "roles": ",".join(u["roles"]),
                     "status": u["status"], "last_login": u.get("last_login") or "never",
                     "failed_attempts": str(failed[uid]), "suspensions": str(suspended[uid]),
                     "unlocks": str(unlocked[uid]), "created_at": u.get("created_at", ""),
                     "badge": "yes" if u.get("badge_id") else "no"})
    unknown = sum(n for k, n in failed.items() if k not in {r["user_id"] for r in rows})
    if unknown:
        rows.append({c: "" for c in COLUMNS} | {"user_id": "(unknown ids)", "failed_attempts": str(unknown)})
    return rows


def render(rows: list[dict[str, str]], devices: list[dict[str, str]], fmt: str, generated_at: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, COLUMNS)
        writer.writeheader()
        from kiosk.services.audit_export import spreadsheet_safe

        for row in rows:
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
        return buf.getvalue()
    # Read by people: times as lists show them, and text that cannot break a table (a "|" in a name would
    # shift every column after it). The CSV keeps the stored forms, for a spreadsheet.
    def cell(column: str, value: str) -> str:
        if column in _TIMES and value and value != "never":
            return f"{utc_text(value)} UTC"
        return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["# Access review", "", f"- generated: {cell('generated', generated_at)}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c, row[c]) for c in COLUMNS) + " |" for row in rows]
    lines += ["", "## Devices", "", "| chain | status | since |", "|---|---|---|"]
    lines += [f"| {cell('chain', d['chain'])} | {cell('status', d['status'])} | {cell('since', d['since'])} |"
              for d in devices]
    return "\n".join(lines) + "\n"


_TIMES = ("generated", "last_login", "created_at", "since")
