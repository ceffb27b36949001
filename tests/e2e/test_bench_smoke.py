"""The benchmarks still run (tiny sizes; no timing is asserted — figures come from bench/ runs)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script, args", [("bench_chain.py", ["50"]), ("bench_signing.py", ["5"]),
                                          ("bench_export.py", ["1000"]), ("bench_memory.py", ["2000"]),
                                          ("bench_ui.py", ["300", "10"]),
                                          ("bench_ingest.py", ["400", "1"])])
def test_benchmark_runs_and_prints_its_limit(script, args, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio" in result.stdout


def test_ingest_instruction_count_runs_or_names_what_it_needs(tmp_path):
    """``bench_ingest.py --instructions`` counts with valgrind; without it, it says so instead of failing oddly."""
    import shutil

    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_ingest.py"), "--instructions", "100"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    if shutil.which("valgrind") is None:
        assert result.returncode != 0 and "needs valgrind" in result.stderr
        return
    assert result.returncode == 0, result.stderr[-2000:]
    assert "instructions per record" in result.stdout and "of the verify-bound limit" in result.stdout


@pytest.mark.parametrize("mode", ["limit", "statements", "argon2", "prepare", "event"])
def test_signing_instruction_workers_run(mode, tmp_path):
    """What ``bench_signing.py --instructions`` has valgrind count (each run under valgrind takes a minute,
    so here the workers run plainly; the counting itself is the ingest bench's, tested above)."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_signing.py"), "--worker", mode, "3", "4"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.pg
@pytest.mark.req("A11-16")
def test_load_profile_smoke_three_kiosks_ten_seconds(tmp_path):
    """bench/soak_load.py in its CI size: 3 kiosk processes, 10 s, one central PostgreSQL; no loss, no fork."""
    out = tmp_path / "load.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "soak_load.py"), "--kiosks", "3", "--seconds", "10",
                             "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "loss 0; forks 0" in result.stdout and "ratio p99" in result.stdout
    import json

    figures = json.loads(out.read_text())
    assert figures["kiosks_finished"] == 3 and figures["signatures"] > 0
    assert figures["verified_records"] == figures["records"]
