import contextlib

import pytest

from storage.keyfile import load_or_create_identity
from storage.central import CentralStore
from storage.local_store import CheckpointPolicy, LocalStore
from tests.storage.pg_helpers import fresh_database


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
@pytest.fixture(scope="module")
def pg_database():
    with fresh_database("kiosk_test") as url:
        yield url


@pytest.fixture(params=["postgresql", "sqlite"])
def central(request, tmp_path, clock):
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            url = stack.enter_context(fresh_database("c"))
        else:
            url = f"sqlite:///{tmp_path / 'central.db'}"
        store = CentralStore.open(url, clock, central_key(tmp_path), central_time=clock)
        yield store
        store.close()


ADMIN = {"user_id": "site.admin", "name": "Site Admin", "role": "admin"}


def central_key(tmp_path):
    from storage.keyfile import load_or_create_central_key

    return load_or_create_central_key(tmp_path / "central.key")


def enroll(central, local):
    """The device's first records arrived: ingest registers it as pending; an admin approves it."""
    central.ingest_all()
    central.decide_device(local.chain, "approved", ADMIN, "fingerprint compared")
    central.ingest_all()


