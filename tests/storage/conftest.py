import os
import uuid

import psycopg
import pytest

from storage.keyfile import load_or_create_identity
from storage.central import CentralStore
from storage.local_store import CheckpointPolicy, LocalStore


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def store(data_dir, clock):
    identity = load_or_create_identity(data_dir, "dev-1")
    s = LocalStore.open(data_dir, identity, clock, checkpoints=CheckpointPolicy(every_records=256, every_s=300))
    yield s
    s.close()


# PostgreSQL runs on every developer machine and in CI (.ci/run starts it if it is down).
PG = os.environ.get("KIOSK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_database():
    name = f"kiosk_test_{uuid.uuid4().hex[:12]}"
    admin = PG.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["postgresql", "sqlite"])
def central(request, tmp_path, clock):
    if request.param == "postgresql":
        base = request.getfixturevalue("pg_database")
        schema_db = f"c_{uuid.uuid4().hex[:10]}"
        admin = base.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{schema_db}"')
        url = base.rsplit("/", 1)[0] + "/" + schema_db
    else:
        url = f"sqlite:///{tmp_path / 'central.db'}"
    store = CentralStore.open(url, clock, central_key(tmp_path), central_time=clock)
    yield store
    store.close()
    if request.param == "postgresql":
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{schema_db}" WITH (FORCE)')


ADMIN = {"user_id": "site.admin", "name": "Site Admin", "role": "admin"}


def central_key(tmp_path):
    from storage.keyfile import load_or_create_central_key

    return load_or_create_central_key(tmp_path / "central.key")


def enroll(central, local):
    """The device's first records arrived: ingest registers it as pending; an admin approves it."""
    central.ingest_all()
    central.decide_device(local.chain, "approved", ADMIN, "fingerprint compared")
    central.ingest_all()


