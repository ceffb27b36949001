import subprocess
import sys

import pytest

from tests.services.conftest import admin, config, kiosk  # noqa: F401
from tests.services.test_signing import PW, clear_line, code, floor  # noqa: F401


def _exported(pdfium, kiosk, tmp_path):
    """B-1 exported by the command line (the kiosk closed first): the document and its text, one line."""
    out = tmp_path / "B-1.pdf"
    kiosk.close()
    result = subprocess.run([sys.executable, "-m", "kiosk.cli", "export", "batch", "B-1", "--out", str(out),
                             "--data-dir", str(kiosk.data_dir)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    doc = pdfium.PdfDocument(str(out))
    return doc, " ".join(" ".join(doc[i].get_textpage().get_text_range() for i in range(len(doc))).split())


@pytest.mark.req("P11-50")
@pytest.mark.req("A11-8")
@pytest.mark.req("P11-10b")
def test_batch_pdf_shows_values_signatures_corrections_and_verification(kiosk, floor, clock, tmp_path):  # noqa: F811
    pdfium = pytest.importorskip("pypdfium2")
    clear_line(kiosk, floor, clock)
    p = kiosk.signing.prepare("B-1", "weigh-salts", "Performed", {"balance_id": "BAL-7", "net_kg": "1.500"})
    kiosk.signing.sign(p, PW)
    kiosk.signing.correct("B-1", "weigh-salts", {"balance_id": "BAL-7", "net_kg": "1.501"}, "transcription error")
    doc, text = _exported(pdfium, kiosk, tmp_path)
    for expected in ("Executed batch record B-1", "Jane Operator (jane.op)", "Omar Operator (omar.op)",
                     "Performed", "Verified", "INVALIDATED", "transcription error", "1.501", "Europe/Dublin",
                     "verification: OK", "batch status: needs resign", "Review by exception: 2",
                     "Weigh sodium phosphate: 1 signature taken back by a correction",
                     # A correction reads as the step's table does, field by field, and times as people read them.
                     "by jane.op (operator): Net weight: 1.500 kg → 1.501 kg; reason: transcription error",
                     "2026-11-24 10:02:35 GMT (Europe/Dublin; 2026-11-24 10:02:35 UTC)"):
        assert expected in text, expected
    assert "{'" not in text and ".000000Z" not in text, text  # no Python repr, no stored timestamp
    bitmap = doc[0].render(scale=0.5)
    assert sum(1 for b in bytes(bitmap.buffer)[::4] if b < 128) > 500


@pytest.mark.req("A11-8")
def test_the_pdf_of_a_cancelled_batch_says_who_cancelled_it_and_why(kiosk, floor, clock, tmp_path):  # noqa: F811
    pdfium = pytest.importorskip("pypdfium2")
    clear_line(kiosk, floor, clock)
    kiosk.signing.cancel_batch("B-1", "started against the wrong order", "quinn.qa", PW, code(floor, "quinn.qa", clock))
    _doc, text = _exported(pdfium, kiosk, tmp_path)
    for expected in ("batch status: cancelled", "CANCELLED by Quinn QA (quinn.qa), role qa", "Review by exception: none",
                     "reason: started against the wrong order", "Jane Operator (jane.op)"):
        assert expected in text, expected


@pytest.mark.req("P11-10b")
def test_an_export_that_cannot_be_written_says_so_and_leaves_no_file(kiosk, floor, clock, tmp_path):  # noqa: F811
    kiosk.close()
    missing = tmp_path / "no such folder"
    for command in (("batch", "B-1"), ("audit",), ("audit", "--format", "json"), ("audit", "--format", "pdf"),
                    ("bundle",), ("access-review",)):
        out = missing / f"{command[0]}.out"
        if command[0] == "bundle":
            out = out.with_suffix(".zip")
        result = subprocess.run([sys.executable, "-m", "kiosk.cli", "export", *command, "--out", str(out),
                                 "--data-dir", str(kiosk.data_dir)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (command, result.stderr)
        assert f"error: {out}: cannot be written (No such file or directory)" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not missing.exists()


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_partial_one(tmp_path):
    from kiosk.services.atomic_file import written_atomically

    out = tmp_path / "review.md"
    out.write_text("the reviewed copy")
    with pytest.raises(RuntimeError):
        with written_atomically(out, "w") as fh:
            fh.write("half of a new copy")
            raise RuntimeError("the disk filled up")
    assert out.read_text() == "the reviewed copy" and sorted(p.name for p in tmp_path.iterdir()) == ["review.md"]
    with written_atomically(out, "w") as fh:
        fh.write("the new copy")
    assert out.read_text() == "the new copy" and sorted(p.name for p in tmp_path.iterdir()) == ["review.md"]

