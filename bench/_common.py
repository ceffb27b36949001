"""Helpers for benchmarks: every figure is printed next to a limit measured in the same run."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
VALGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]


def rate(n: int, fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50, p99


def report(name: str, value: float, unit: str, limit_name: str, limit: float, higher_is_better: bool = True) -> None:
    ratio = value / limit if limit else float("nan")
    better = "of" if higher_is_better else "x"
    print(f"{name:<44} {value:>12,.1f} {unit:<10} {limit_name:<34} {limit:>12,.1f} {unit:<10} ratio {ratio:5.2f} {better} limit")


def need_valgrind() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt install valgrind)")


def instructions(script: str, *args: str, stdin: str = "") -> int:
    """User-space instructions ``python script args`` executes, start to exit, all threads (valgrind counts them).

    On a shared 2-core machine a timed ratio moves with the machine (+-35%
    within minutes) and Python code slows more than C does; the instructions
    each side executes do not move. Kernel work (fsync, sockets) is not counted.
    The hash seed is fixed: with a random one, set and dict layouts change
    from run to run, and so did a signing event's count, by up to 70,000.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    done = subprocess.run([*VALGRIND, sys.executable, script, *args], input=stdin, capture_output=True, text=True,
                          env=env)
    counted = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode or counted is None:
        raise SystemExit(f"a worker failed under valgrind:\n{done.stderr[-2000:]}")
    return int(counted.group(1).replace(",", ""))


def differenced(counts: dict[str, list[int]], sizes: list[int] | tuple[int, ...]) -> dict[str, float]:
    """Per unit of work, from a big and a small run of each (``counts[name] = [big, small]``, ``sizes`` alike):
    whatever both runs do once (start-up, set-up, teardown) cancels out."""
    return {name: (big - small) / (sizes[0] - sizes[1]) for name, (big, small) in counts.items()}
