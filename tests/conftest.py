"""Shared fixtures: a FakeClock everywhere, real stores in temp dirs."""

from __future__ import annotations

import datetime as dt

import pytest

from kiosk.domain.clock import UTC, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC), zone="Europe/Dublin")


# -- validation evidence ------------------------------------------------------
# Every full run of the suite writes validation-results.json: each test tagged
# with a REQUIREMENTS.md row and its outcome. `kiosk validation matrix` reads it.

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
_outcomes: dict[str, tuple[tuple[str, ...], str]] = {}
_started = dt.datetime.now(UTC)


def pytest_collection_modifyitems(items):
    for item in items:
        reqs = tuple(dict.fromkeys(m.args[0] for m in item.iter_markers("req")))
        if reqs:
            item.user_properties.append(("reqs", reqs))


def pytest_runtest_logreport(report):
    reqs = dict(report.user_properties).get("reqs")
    if not reqs:
        return
    if report.when == "call":
        outcome = report.outcome
    elif report.failed:
        outcome = "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        return
    previous = _outcomes.get(report.nodeid)
    if previous is None or _RANK[outcome] > _RANK[previous[1]]:
        _outcomes[report.nodeid] = (tuple(reqs), outcome)


def _results_path(config) -> Path | None:
    forced = os.environ.get("KIOSK_VALIDATION_RESULTS")
    if forced:
        return Path(forced)
    partial = config.option.file_or_dir or config.option.keyword or config.option.markexpr not in ("", "not soak")
    return None if partial else Path(config.rootpath) / "validation-results.json"


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        return
    path = _results_path(config)
    if path is None:
        return
    root = Path(config.rootpath)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    from kiosk import __version__

    totals: dict[str, int] = {}
    for _, outcome in _outcomes.values():
        totals[outcome] = totals.get(outcome, 0) + 1
    run = {
        "software_version": f"{__version__}" + (f" (git {commit})" if commit else ""),
        "config_hash": hashlib.sha256((root / "config" / "kiosk.toml").read_bytes()).hexdigest(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "started": _started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(UTC).isoformat(timespec="seconds"),
        "totals": totals,
        "exit_status": int(exitstatus),
    }
    tests = [{"nodeid": n, "reqs": list(r), "outcome": o} for n, (r, o) in sorted(_outcomes.items())]
    path.write_text(json.dumps({"run": run, "tests": tests}, indent=1), "utf-8")
