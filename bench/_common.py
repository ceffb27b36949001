"""Helpers for benchmarks: every figure is printed next to a limit measured in the same run."""

from __future__ import annotations

import statistics
import time
from typing import Callable


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
