"""The traceability matrix: each regulatory row -> the tests that show it -> their last result.

Auditors ask for exactly this document (P11-10a, A11-4). A row with no passing
test is a gap and is reported as one, never hidden.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

RESULTS_FILE = "validation-results.json"


class ValidationError(Exception):
    """The requirements or results file cannot be read."""


@dataclass(frozen=True)
class Requirement:
    id: str
    clause: str
    behaviour: str


@dataclass(frozen=True)
class TestResult:
    nodeid: str
    reqs: tuple[str, ...]
    outcome: str  # passed | failed | skipped | error


@dataclass(frozen=True)
class MatrixRow:
    requirement: Requirement
    tests: tuple[TestResult, ...]

    @property
    def status(self) -> str:
        if not self.tests:
            return "GAP: no test"
        if any(t.outcome in ("failed", "error") for t in self.tests):
            return "FAIL"
        if not any(t.outcome == "passed" for t in self.tests):
            return "GAP: no passing test"
        return "PASS"


@dataclass(frozen=True)
class RunInfo:
    software_version: str
    config_hash: str
    platform: str
    python: str
    started: str
    finished: str
    totals: dict


_ROW = re.compile(r"^\|\s*([A-Z0-9][A-Za-z0-9-]*)\s*\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$")


def parse_requirements(text: str) -> list[Requirement]:
    rows = []
    for line in text.splitlines():
        match = _ROW.match(line)
        if match and match.group(1) != "id" and not set(match.group(1)) <= {"-"}:
            rows.append(Requirement(*match.groups()))
    if not rows:
        raise ValidationError("no requirement rows found (expected a '| id | clause | behaviour |' table)")
    return rows


def load_results(path: Path) -> tuple[list[TestResult], dict]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{path}: no test results yet; run the test suite first (or pass --run)") from None
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{path}: cannot be read as test results ({exc})") from None
    results = [TestResult(r["nodeid"], tuple(r["reqs"]), r["outcome"]) for r in data.get("tests", [])]
    return results, data.get("run", {})


def build_matrix(requirements: Iterable[Requirement], results: Iterable[TestResult]) -> list[MatrixRow]:
    by_req: dict[str, list[TestResult]] = {}
    for result in results:
        for req in result.reqs:
            by_req.setdefault(req, []).append(result)
    return [MatrixRow(r, tuple(sorted(by_req.get(r.id, []), key=lambda t: t.nodeid))) for r in requirements]


def unknown_tags(requirements: Iterable[Requirement], results: Iterable[TestResult]) -> set[str]:
    known = {r.id for r in requirements}
    return {tag for t in results for tag in t.reqs if tag not in known}


def render_markdown(matrix: list[MatrixRow], run: dict) -> str:
    lines = ["# Validation matrix", ""]
    for key in ("software_version", "config_hash", "platform", "python", "started", "finished"):
        if key in run:
            lines.append(f"- {key.replace('_', ' ')}: {run[key]}")
    totals = run.get("totals")
    if totals:
        lines.append("- tests: " + ", ".join(f"{v} {k}" for k, v in sorted(totals.items())))
    gaps = sum(1 for row in matrix if row.status != "PASS")
    lines += [f"- rows: {len(matrix)}, passing: {len(matrix) - gaps}, gaps or failures: {gaps}", ""]
    lines += ["| id | clause | status | tests |", "|---|---|---|---|"]
    for row in matrix:
        tests = "<br>".join(f"{t.nodeid} ({t.outcome})" for t in row.tests) or "—"
        lines.append(f"| {row.requirement.id} | {row.requirement.clause} | {row.status} | {tests} |")
    return "\n".join(lines) + "\n"
