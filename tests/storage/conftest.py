import pytest

from storage.keyfile import load_or_create_identity
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
