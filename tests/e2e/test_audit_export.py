import csv
import re
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
                   "--type", "step.signed", "--batch", "B-3")
    assert result.returncode == 0, result.stderr
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = [i for i in range(N) if i % 2 == 1 and i % 7 == 3]
    assert len(rows) == len(expected)
    evil = [row for row in rows if row["name"] == "'@Evil +Name"]
    assert len(evil) == len([i for i in expected if i % 3 == 1]) > 0
    assert {row["user_id"] for row in evil} == {"'=cmd|' /C calc'!A0"}
    for row in rows:
        assert row["type"] == "step.signed" and row["batch_id"] == "B-3"
        assert row["ts_utc"].endswith("Z") and row["zone"] == "Europe/Dublin" and len(row["hash"]) == 64
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


@pytest.mark.req("P11-10b")
@pytest.mark.req("A11-9")
def test_filters_mean_what_the_audit_viewer_means_by_them(history, tmp_path):
    """A user id in any case is that user (as at login); a date in --to is that whole day (as in the audit
    viewer); a filter that names nothing in the store says so instead of reading as an empty trail."""
    def export(*filters):
        out = tmp_path / "a.csv"
        done = kiosk("export", "audit", "--out", str(out), "--data-dir", str(history), *filters)
        assert done.returncode == 0, done.stderr
        with open(out, encoding="utf-8-sig", newline="") as fh:
            return [row["hash"] for row in csv.DictReader(fh)], done.stderr

    jane, _ = export("--user", "jane.op")
    assert len(jane) == len(range(0, N, 3)) and export("--user", "Jane.Op")[0] == jane
    conn = sqlite3.connect(history / "kiosk.db")
    (day,) = conn.execute("SELECT min(substr(ts, 1, 10)) FROM records").fetchone()
    (through_day,) = conn.execute("SELECT count(*) FROM records WHERE substr(ts, 1, 10) <= ?", (day,)).fetchone()
    assert len(export("--to", day)[0]) == through_day > 0
    none, why = export("--batch", "B-33")
    assert none == [] and "note: this store has no batch 'B-33'; check the id" in why
    refused = kiosk("export", "audit", "--out", str(tmp_path / "b.csv"), "--data-dir", str(history),
                    "--user", "jane op")
    assert refused.returncode == 2 and "a user id is 2-64 characters" in refused.stderr


@pytest.mark.req("A11-9")
def test_a_batch_id_in_any_case_is_that_batch(tmp_path):
    """Batch ids are compared without case on the floor (a second batch differing only in case is refused),
    so the export finds "pb-2026-001" as the worklist's Go to batch does."""
    from kiosk.demo import create_demo

    kiosk_, _ = create_demo(tmp_path / "demo", FakeClock())
    kiosk_.close()

    def export(batch):
        out = tmp_path / "a.csv"
        done = kiosk("export", "audit", "--out", str(out), "--data-dir", str(tmp_path / "demo"), "--batch", batch)
        assert done.returncode == 0, done.stderr
        with open(out, encoding="utf-8-sig", newline="") as fh:
            return [(row["type"], row["batch_id"]) for row in csv.DictReader(fh)]

    exact = export("PB-2026-001")
    assert exact and {b for _, b in exact} == {"PB-2026-001"} and export("pb-2026-001") == exact
    # The executed batch record too.
    pdf = tmp_path / "pb.pdf"
    done = kiosk("export", "batch", "pb-2026-001", "--out", str(pdf), "--data-dir", str(tmp_path / "demo"))
    assert done.returncode == 0 and pdf.read_bytes().startswith(b"%PDF"), done.stderr
    done = kiosk("export", "batch", "pb-2026-0001", "--out", str(pdf), "--data-dir", str(tmp_path / "demo"))
    assert done.returncode == 2 and "no batch 'pb-2026-0001' in this store" in done.stderr


def test_twin_batch_ids_from_two_offline_terminals_must_be_given_exactly(tmp_path):
    """Two terminals offline may each start "PB-2026-001" in another case; then neither is guessed."""
    from kiosk.domain import batches as bx
    from kiosk.demo import create_demo

    demo = tmp_path / "demo"
    kiosk_, _ = create_demo(demo, FakeClock())
    doc = kiosk_.directory.get(bx.BATCH, "PB-2026-001")
    kiosk_.store.append("batch.created", {  # as pulled from the other terminal
        "actor": actor("ben.op", "Ben Okafor", "operator"), "target": target("batch", "pb-2026-001"),
        "batch_id": "pb-2026-001", "recipe_key": doc["recipe_key"], "recipe_hash": doc["recipe_hash"],
        "new": {"recipe": doc["recipe_key"]}})
    kiosk_.close()
    assert bx.ids_alike(["PB-2026-001", "pb-2026-001", "PB-2026-002"], "Pb-2026-001") == ["PB-2026-001", "pb-2026-001"]
    out = tmp_path / "a.csv"
    done = kiosk("export", "audit", "--out", str(out), "--data-dir", str(demo), "--batch", "Pb-2026-001")
    assert done.returncode == 0 and "0 record(s)" in done.stdout
    assert "note: batches PB-2026-001, pb-2026-001 differ only in case; give the id exactly" in done.stderr
    done = kiosk("export", "audit", "--out", str(out), "--data-dir", str(demo), "--batch", "pb-2026-001")
    assert "1 record(s)" in done.stdout  # exactly given: that one
    done = kiosk("export", "batch", "Pb-2026-001", "--out", str(tmp_path / "b.pdf"), "--data-dir", str(demo))
    assert done.returncode == 2 and "differ only in case" in done.stderr


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
    assert "no record in this store has type 'step.sign'; did you mean 'step.signed'?" in typo.stderr
    # A real type that no record here has yet is not called a typo, nor is one that is nothing like any.
    for wanted in ("signature.invalidated", "zzz"):
        none = kiosk("export", "audit", "--out", str(out), "--data-dir", str(history), "--type", wanted)
        assert none.returncode == 0 and f"no record in this store has type '{wanted}': none was written here, or " \
            "it is misspelled" in none.stderr, none.stderr


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
    # Printed for people: times as the screens show them, UTC and the site's (the CSV keeps the stored forms).
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT", text), text[:300]
    assert ".000000Z" not in text and "+00:00" not in text
    assert "Filters: user sam.qa · batch B-1 · type step.signed" in text, text[:300]  # not a Python dict


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
