"""Per-run PostgreSQL databases for tests (never shared between runs or xdist workers; always dropped)."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator

import psycopg

PG = os.environ.get("KIOSK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def libpq(url: str) -> str:
    """The SQLAlchemy URL as psycopg (libpq) wants it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def fresh_database(prefix: str = "kiosk_t") -> Iterator[str]:
    """A new, empty database on the test server; dropped (with any open sessions) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq(PG), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(PG, name)
    finally:
        with psycopg.connect(libpq(PG), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
