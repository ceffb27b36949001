"""The headless parts must run without the UI; the UI must not reach the stores.

import-linter checks the static imports (contracts in pyproject.toml); the
subprocess check catches what actually gets imported at run time.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEADLESS = [
    "kiosk.domain.records",
    "kiosk.domain.chain",
    "kiosk.config",
    "kiosk.cli",
    "storage.local_store",
    "storage.verify_local",
]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.req("P11-10a")
@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_does_not_import_textual(module):
    result = run_python(f"import sys, {module}; print('textual' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_domain_imports_no_database_or_ui():
    result = run_python(
        "import sys, pkgutil, importlib, kiosk.domain as d\n"
        "for m in pkgutil.iter_modules(d.__path__): importlib.import_module('kiosk.domain.' + m.name)\n"
        "print(sorted(x for x in ('textual', 'sqlalchemy', 'storage', 'screens') if x in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.req("P11-10a")
def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")
