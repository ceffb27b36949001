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
