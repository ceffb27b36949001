"""Run the reliability and security proof (issue 10) and write docs/reliability.md from its results.

Profiles:
  long   the soak tests (`-m soak`: 200 SIGKILLs of a store writer, 100 of a signing kiosk), every
         reliability/security suite, the fuzzers at 1,000 examples each, and the load profile of
         20 kiosk processes for 600 s against one PostgreSQL.
  short  the same suites and soak tests, fuzzers at 300 examples, load 20 kiosks for 60 s.
  ci     no soak tests, fuzzers at their CI size, load 3 kiosks for 10 s (a smoke run of this script).

The page is generated, never edited by hand; it says which profile produced it, when, and on what.

Run: python bench/reliability_report.py [--profile long|short|ci] [--out docs/reliability.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROFILES = {
    "long": {"soak": True, "fuzz_examples": 1000, "kiosks": 20, "seconds": 600},
    "short": {"soak": True, "fuzz_examples": 300, "kiosks": 20, "seconds": 60},
    "ci": {"soak": False, "fuzz_examples": 150, "kiosks": 3, "seconds": 10},
}

# The promises, each with the test files that show it.
POINTS = [
    ("1", "Power loss: SIGKILL while signing; verify passes, nothing reported is lost, no half record",
     ["tests/security/test_power_loss.py"]),
    ("2", "Central outage (PostgreSQL unreachable, link cut mid-transfer): every record once, in order, verified",
     ["tests/storage/test_outage.py"]),
    ("3", "Disk full / read-only data directory: refused clearly, nothing damaged, recovery",
     ["tests/security/test_disk_faults.py"]),
    ("4", "Tamper by direct SQL: detected by kiosk verify and by ingest, record named",
     ["tests/security/test_tamper.py", "tests/storage/test_tamper_property.py", "tests/storage/test_verify_central.py"]),
    ("5", "Brute force and enumeration: suspension, delays, alerts, equal answers and work, admin path",
     ["tests/security/test_brute_force.py"]),
    ("6", "Kiosk escape: default bindings, quit chords, pasted escapes never leave the app",
     ["tests/ui/test_escape_real.py", "tests/ui/test_hardening.py"]),
    ("7", "Bad input fuzz: clear errors, stores intact",
     ["tests/security/test_fuzz.py"]),
    ("8", "Backup and restore: verified restore; old backup detected; central pg_dump restore",
     ["tests/storage/test_restore_sync.py", "tests/storage/test_backup.py"]),
    ("9", "Load: concurrent kiosks against one PostgreSQL, no loss, no fork",
     ["tests/e2e/test_bench_smoke.py"]),
]


def run_tests(profile: dict, figures_file: Path, junit: Path) -> float:
    files = sorted({f for _, _, fs in POINTS for f in fs})
    marker = "soak or not soak" if profile["soak"] else "not soak"
    env = {**os.environ, "KIOSK_RELIABILITY_OUT": str(figures_file),
           "KIOSK_FUZZ_EXAMPLES": str(profile["fuzz_examples"]), "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-m", marker, f"--junitxml={junit}", *files],
                   cwd=ROOT, env=env, check=False)
    return time.perf_counter() - start


def parse_junit(path: Path) -> list[dict]:
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "skipped: " + (child.get("message") or "")[:120]
        module = case.get("classname", "").replace(".", "/") + ".py"
        cases.append({"file": module, "name": case.get("name", ""), "time": float(case.get("time") or 0),
                      "outcome": outcome})
    return cases


def run_load(profile: dict, out: Path) -> tuple[dict, str]:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "soak_load.py"), "--kiosks", str(profile["kiosks"]),
                             "--seconds", str(profile["seconds"]), "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    figures = json.loads(out.read_text()) if out.exists() else {}
    figures["exit_status"] = result.returncode
    return figures, result.stdout + result.stderr[-2000:]


def machine() -> dict:
    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError:
            return ""

    mem = ""
    try:
        kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    pg = ""
    try:
        import psycopg

        url = os.environ.get("KIOSK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - the report says so
        pg = f"unreachable ({type(exc).__name__})"
    dirty = " (with uncommitted changes)" if cmd("git", "status", "--porcelain") else ""
    return {
        "platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "memory": mem,
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "postgresql": pg,
        "textual": version("textual"), "git": cmd("git", "rev-parse", "--short", "HEAD") + dirty,
    }


def render(profile_name: str, profile: dict, info: dict, cases: list[dict], test_s: float, extra: list[dict],
           load: dict, load_text: str, started: dt.datetime) -> str:
    by_file: dict[str, list[dict]] = {}
    for case in cases:
        by_file.setdefault(case["file"], []).append(case)
    lines = [
        "# Reliability and security proof",
        "",
        f"Generated by `python bench/reliability_report.py --profile {profile_name}` on "
        f"{started:%Y-%m-%d %H:%M} UTC. Do not edit by hand: run the script again.",
        "",
        f"**Profile: {profile_name}.** " + {
            "long": "The long profile: soak tests, fuzzers at 1,000 examples, load 20 kiosks x 600 s.",
            "short": ("A shortened run of the long profile: the same soak tests (200 + 100 SIGKILLs) and suites, "
                      "fuzzers at 300 examples, and the load profile for 60 s instead of 600 s. "
                      "Run `--profile long` for the full figures."),
            "ci": "The CI-sized smoke run of this script: no soak tests, load 3 kiosks x 10 s.",
        }[profile_name],
        "",
        "## Machine and software",
        "",
        "| | |",
        "|---|---|",
        f"| Platform | {info['platform']} |",
        f"| CPU | {info['cpu']} ({info['cpus']} CPUs available) |",
        f"| Memory | {info['memory']} |",
        f"| Python | {info['python']} |",
        f"| SQLite | {info['sqlite']} |",
        f"| PostgreSQL | {info['postgresql']} |",
        f"| Textual | {info['textual']} |",
        f"| Code | git {info['git']} |",
        "",
        "## Promises (issue 10)",
        "",
        "| # | Promise | Tests | Passed | Failed | Skipped |",
        "|---|---|---|---|---|---|",
    ]
    all_ok = True
    for number, promise, files in POINTS:
        mine = [c for f in files for c in by_file.get(f, [])]
        passed = sum(c["outcome"] == "passed" for c in mine)
        failed = sum(c["outcome"] == "failed" for c in mine)
        skipped = sum(c["outcome"].startswith("skipped") for c in mine)
        all_ok &= failed == 0 and passed > 0
        lines.append(f"| {number} | {promise} | {', '.join(f'`{f}`' for f in files)} | {passed} | {failed} | {skipped} |")
    load_ok = load.get("exit_status") == 0 and load.get("loss") == 0 and load.get("forks") == 0
    lines += [
        "",
        f"Overall: **{'all promises held' if all_ok and load_ok else 'FAILURES: see below'}** "
        f"({len(cases)} tests in {test_s / 60:.1f} min, plus the load run).",
        "",
        "## Figures",
        "",
    ]
    for item in extra:
        values = ", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k} {v}"
                           for k, v in item.items() if k != "name")
        lines.append(f"- {item['name']}: {values}")
    if load:
        lines += [
            "",
            f"### Load: {load.get('kiosks')} kiosk processes x {load.get('seconds', 0):.0f} s against one PostgreSQL",
            "",
            "| Figure | Value |",
            "|---|---|",
            f"| Kiosks finished | {load.get('kiosks_finished')} of {load.get('kiosks')} |",
            f"| Records (all kiosks) | {load.get('records', 0):,} |",
            f"| Step signatures | {load.get('signatures', 0):,} ({load.get('signatures_per_s', 0):,.1f}/s) |",
            f"| Ledger records verified (Ed25519, links, checkpoints) | {load.get('verified_records', 0):,} |",
            f"| Loss | **{load.get('loss')}** |",
            f"| Forks | **{load.get('forks')}** |",
            f"| Quarantined / left in the inbox | {load.get('quarantined')} / {load.get('inbox_left')} |",
            f"| Signing latency p50 / p99 | {load.get('sign_p50_ms', 0):.1f} ms / {load.get('sign_p99_ms', 0):.1f} ms |",
            f"| Raw limit p50 / p99 (argon2 verify + Ed25519 sign + SQLite commit, same load) | "
            f"{load.get('limit_p50_ms', 0):.1f} ms / {load.get('limit_p99_ms', 0):.1f} ms |",
            f"| Ratio p50 / p99 | {load.get('sign_p50_ms', 0) / max(load.get('limit_p50_ms', 1), 1e-9):.2f} / "
            f"{load.get('sign_p99_ms', 0) / max(load.get('limit_p99_ms', 1), 1e-9):.2f} |",
            f"| argon2 parameters / operator think time | {load.get('argon2')} / {load.get('think_ms')} ms |",
            "",
            "```",
            load_text.strip(),
            "```",
        ]
    lines += ["", "## Every test", "", "| Test | Outcome | Time |", "|---|---|---|"]
    for case in sorted(cases, key=lambda c: (c["file"], c["name"])):
        lines.append(f"| `{case['file']}::{case['name']}` | {case['outcome']} | {case['time']:.1f} s |")
    lines += ["", "Tampering with the central ledger itself is shown by `kiosk central verify`'s tests",
              "(`tests/storage/test_verify_central.py`, from the ingest branch), included above under 4.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    started = dt.datetime.now(dt.timezone.utc)
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures_file, junit = tmp / "figures.jsonl", tmp / "junit.xml"
        test_s = run_tests(profile, figures_file, junit)
        cases = parse_junit(junit) if junit.exists() else []
        extra = [json.loads(line) for line in figures_file.read_text().splitlines()] if figures_file.exists() else []
        load, load_text = run_load(profile, tmp / "load.json")
    args.out.write_text(render(args.profile, profile, info, cases, test_s, extra, load, load_text, started),
                        "utf-8")
    print(f"wrote {args.out}")
    failed = any(c["outcome"] == "failed" for c in cases) or load.get("exit_status") != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
