"""Shared fixtures: a FakeClock everywhere, real stores in temp dirs."""

from __future__ import annotations

import datetime as dt

import pytest

from kiosk.domain.clock import UTC, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC), zone="Europe/Dublin")
