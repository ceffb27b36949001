import csv
import sqlite3
import subprocess
import sys

import pytest

from kiosk.domain.audit import actor, target
from kiosk.domain.clock import FakeClock
from kiosk.services.audit_export import spreadsheet_safe
from storage.keyfile import load_or_create_identity
from storage.local_store import LocalStore

N = 10_000


def kiosk(*args):
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """10,000 generated records from several users, batches and types."""
    data = tmp_path_factory.mktemp("hist") / "data"
    clock = FakeClock()
    store = LocalStore.open(data, load_or_create_identity(data, "line-1"), clock)
    users = [("jane.op", "Jane Operator", "operator"), ("=cmd|' /C calc'!A0", "@Evil +Name", "operator"),
             ("sam.qa", "Sam QA", "qa")]
    chunk = []
    for i in range(N):
        uid, name, role = users[i % 3]
        chunk.append(("step.signed" if i % 2 else "session.login", {
            "actor": actor(uid, name, role), "batch_id": f"B-{i % 7}", "step_id": f"s{i % 5}",
            "target": target("step", f"s{i % 5}"), "new": {"value": f"-{i}.5"}, "reason": "-2+3" if i % 11 == 0 else "",
        }))
        if len(chunk) == 500:
            clock.advance(60)
            store.append_many(chunk)
            chunk = []
    store.close()
    return data


def test_spreadsheet_safe_neutralises_formulas():
    for evil in ("=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=x", "\r=x"):
        assert spreadsheet_safe(evil).startswith("'")
    assert spreadsheet_safe("Jane") == "Jane" and spreadsheet_safe(None) == ""


@pytest.mark.req("P11-10b")
@pytest.mark.req("A11-9")
def test_json_export_is_the_stored_records_byte_for_byte(history, tmp_path):
    out = tmp_path / "audit.jsonl"
    result = kiosk("export", "audit", "--format", "json", "--out", str(out), "--data-dir", str(history))
    assert result.returncode == 0, result.stderr
    lines = out.read_bytes().splitlines()
    conn = sqlite3.connect(history / "kiosk.db")
    stored = [bytes(r[0]) for r in conn.execute("SELECT raw FROM records ORDER BY ts, chain, seq")]
    assert len(lines) == len(stored) > N
    for line, raw in zip(lines, stored):
        assert line.startswith(b'{"r":' + raw + b',"s":"')


@pytest.mark.req("P11-10b")
@pytest.mark.req("P11-10e")
@pytest.mark.req("A11-9")
def test_csv_export_filters_and_is_formula_safe(history, tmp_path):
    out = tmp_path / "audit.csv"
    result = kiosk("export", "audit", "--format", "csv", "--out", str(out), "--data-dir", str(history),
                   "--user", "=cmd|' /C calc'!A0", "--type", "step.signed", "--batch", "B-3")
    assert result.returncode == 0, result.stderr
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = [i for i in range(N) if i % 3 == 1 and i % 2 == 1 and i % 7 == 3]
    assert len(rows) == len(expected)
    for row in rows:
        assert row["user_id"] == "'=cmd|' /C calc'!A0" and row["name"] == "'@Evil +Name"
        assert row["type"] == "step.signed" and row["batch_id"] == "B-3"
        assert row["ts_utc"].endswith("Z") and row["zone"] == "Europe/Dublin" and len(row["hash"]) == 64
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


def test_time_bounds_and_bad_input(history, tmp_path):
    out = tmp_path / "a.csv"
    result = kiosk("export", "audit", "--out", str(out), "--data-dir", str(history), "--from", "2026-11-24T10:05:00Z",
                   "--to", "2026-11-24T10:06:00Z")
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(history / "kiosk.db")
    (expected,) = conn.execute("SELECT count(*) FROM records WHERE ts >= '2026-11-24T10:05:00.000000Z' "
                               "AND ts < '2026-11-24T10:06:00.000000Z'").fetchone()
    assert expected >= 500 and f" {expected} record(s)" in result.stdout
    bad = kiosk("export", "audit", "--out", str(out), "--data-dir", str(history), "--from", "yesterday")
    assert bad.returncode == 2 and "not a date" in bad.stderr
    bad = kiosk("export", "audit", "--out", str(out), "--data-dir", str(history), "--format", "xls")
    assert bad.returncode == 2 and "csv, json, pdf" in bad.stderr
    typo = kiosk("export", "audit", "--out", str(out), "--data-dir", str(history), "--type", "step.sign")
    assert typo.returncode == 0 and "0 record(s)" in typo.stdout
    assert "no record in this store has type 'step.sign'; check the spelling" in typo.stderr


@pytest.mark.req("P11-50")
@pytest.mark.req("P11-10b")
def test_pdf_export_renders_a_non_blank_page(history, tmp_path):
    pdfium = pytest.importorskip("pypdfium2")
    out = tmp_path / "audit.pdf"
    result = kiosk("export", "audit", "--format", "pdf", "--out", str(out), "--data-dir", str(history),
                   "--batch", "B-1", "--type", "step.signed", "--user", "sam.qa")
    assert result.returncode == 0, result.stderr
    page = pdfium.PdfDocument(str(out))[0]
    bitmap = page.render(scale=0.5)
    buf = bytes(bitmap.buffer)
    dark = sum(1 for b in buf[::4] if b < 128)
    assert dark > 500, "the first page is blank"
    text = page.get_textpage().get_text_range()
    assert "Sam QA" in text and "Audit trail" in text


def test_a_forged_record_stops_the_export(history, tmp_path):
    import shutil
    copy = tmp_path / "data"
    shutil.copytree(history, copy)
    conn = sqlite3.connect(copy / "kiosk.db")
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("UPDATE records SET raw = CAST(replace(CAST(raw AS TEXT), 'Jane Operator', 'Jane Operatox') AS BLOB) WHERE seq = 5")
    conn.commit()
    out = tmp_path / "x.csv"
    result = kiosk("export", "audit", "--out", str(out), "--data-dir", str(copy))
    assert result.returncode == 1 and "#5" in result.stderr and "nothing was exported" in result.stderr
    assert not out.exists()
