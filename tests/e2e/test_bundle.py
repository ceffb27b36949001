import ast
import hashlib
import json
import subprocess
import sys
import zipfile

import pytest

from kiosk.domain.clock import FakeClock
from storage.keyfile import load_or_create_identity
from storage.local_store import CheckpointPolicy, LocalStore

STDLIB = set(sys.stdlib_module_names)


@pytest.fixture
def bundle(tmp_path):
    data = tmp_path / "data"
    clock = FakeClock()
    store = LocalStore.open(data, load_or_create_identity(data, "line-7"), clock,
                            checkpoints=CheckpointPolicy(every_records=50, every_s=3600))
    for i in range(120):
        clock.advance(2)
        store.append("step.signed", {"i": i, "name": "Zoë Ångström [bold]"})
    store.close()
    out = tmp_path / "b.zip"
    result = subprocess.run([sys.executable, "-m", "kiosk.cli", "export", "bundle", "--out", str(out),
                             "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(out).extractall(folder)
    return out, folder


def run_verifier(folder, target):
    script = folder / "verify_bundle.py"
    # -I: isolated from PYTHONPATH and the working tree, as on an inspector's laptop
    return subprocess.run([sys.executable, "-I", str(script), str(target)], capture_output=True, text=True,
                          timeout=120, cwd=folder)


def rewrite(folder, name, data: bytes, fix_manifest=True):
    (folder / name).write_bytes(data)
    if fix_manifest:
        manifest = json.loads((folder / "MANIFEST.json").read_text())
        manifest["files"][name] = hashlib.sha256(data).hexdigest()
        (folder / "MANIFEST.json").write_text(json.dumps(manifest))


def chain_file(folder):
    return next(p for p in (folder / "chains").iterdir()).relative_to(folder).as_posix()


def test_verifier_needs_only_stdlib_and_cryptography(bundle):
    _, folder = bundle
    tree = ast.parse((folder / "verify_bundle.py").read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots - STDLIB <= {"cryptography"}, roots - STDLIB


@pytest.mark.req("P11-10b")
@pytest.mark.req("P11-10c")
def test_bundle_verifies_offline_zip_and_folder(bundle):
    out, folder = bundle
    names = set(zipfile.ZipFile(out).namelist())
    assert {"MANIFEST.json", "devices.json", "anchors.json", "verify_bundle.py", "README.txt",
            "chains/line-7.1.jsonl"} <= names
    for target in (out, folder):
        result = run_verifier(folder, target)
        assert result.returncode == 0, result.stdout
        assert "OK  line-7:1: 123 records, 2 checkpoints" in result.stdout
        assert "VERIFIED" in result.stdout
    # A terminal's own bundle carries no central chain: the verifier says so, and refuses a central key to pin.
    assert "NOTE: no central store chain in this bundle" in result.stdout
    pinned = subprocess.run([sys.executable, "-I", str(folder / "verify_bundle.py"), str(out), "--central-key",
                             "ab" * 32], capture_output=True, text=True, timeout=120)
    assert pinned.returncode == 1 and "the bundle holds no central store chain" in pinned.stdout


@pytest.mark.req("P11-10e")
def test_changed_file_fails_on_manifest(bundle):
    _, folder = bundle
    name = chain_file(folder)
    data = (folder / name).read_bytes().replace(b'"i":5,', b'"i":6,', 1)
    rewrite(folder, name, data, fix_manifest=False)
    result = run_verifier(folder, folder)
    assert result.returncode == 1 and "SHA-256 differs from MANIFEST.json" in result.stdout


@pytest.mark.req("P11-10e")
def test_tampered_byte_with_forged_manifest_names_the_record(bundle):
    _, folder = bundle
    name = chain_file(folder)
    data = (folder / name).read_bytes().replace(b'"i":5,', b'"i":6,', 1)
    rewrite(folder, name, data)
    result = run_verifier(folder, folder)
    assert result.returncode == 1
    assert "line 7 (record line-7:1 #7): the Ed25519 signature does not match" in result.stdout


@pytest.mark.req("P11-10c")
def test_missing_record_is_detected(bundle):
    _, folder = bundle
    name = chain_file(folder)
    lines = (folder / name).read_bytes().splitlines(keepends=True)
    del lines[9]
    rewrite(folder, name, b"".join(lines))
    result = run_verifier(folder, folder)
    assert result.returncode == 1 and "expected seq 10: a record is missing" in result.stdout


@pytest.mark.req("P11-10c")
def test_truncated_tail_is_detected_against_anchors(bundle):
    _, folder = bundle
    name = chain_file(folder)
    lines = (folder / name).read_bytes().splitlines(keepends=True)
    rewrite(folder, name, b"".join(lines[:-3]))
    result = run_verifier(folder, folder)
    assert result.returncode == 1 and "records removed" in result.stdout


@pytest.mark.req("P11-10h")
def test_swapped_device_key_is_detected(bundle):
    _, folder = bundle
    from kiosk.domain.keys import SigningKey, b64url

    devices = json.loads((folder / "devices.json").read_text())
    devices[0]["public_key"] = b64url(SigningKey.generate().public.raw)
    rewrite(folder, "devices.json", json.dumps(devices).encode())
    result = run_verifier(folder, folder)
    assert result.returncode == 1 and "devices.json lists key" in result.stdout
