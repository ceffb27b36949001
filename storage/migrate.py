"""Schema versions for the stores, recorded by Alembic.

A store written by a newer kiosk is refused rather than opened: an older
program would not know the newer tables' rules and could break them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from kiosk import __version__

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


SCHEMA_MIGRATED = "schema.migrated"


@dataclass(frozen=True)
class SchemaChange:
    """A schema upgrade that ran: from ``before`` (None: a new store) to ``after``."""

    store: str
    before: str | None
    after: str

    def record_body(self) -> dict[str, str | None]:
        """A ``schema.migrated`` record's body: Annex 11 §10 asks for migrations in the trail like any change.
        A new store is not one: its first record (its chain's opening) dates it."""
        return {"target": {"kind": "store", "id": self.store}, "from": self.before, "to": self.after,
                "reason": f"schema upgraded by kiosk {__version__} when it opened the store"}


class SchemaTooNew(Exception):
    """The store was written by a newer kiosk version."""


class SchemaNotCurrent(Exception):
    """The store has no schema yet, or an older one, where the caller must not create or migrate it."""


def _script(kind: str) -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS / kind))


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _known(script: ScriptDirectory, current: str, head: str | None, where: str) -> None:
    try:
        script.get_revision(current)
    except Exception:
        raise SchemaTooNew(
            f"{where}: schema version {current!r} is newer than this kiosk knows (latest {head!r}); "
            "upgrade the kiosk software instead of opening this store with an older one"
        ) from None


def not_created(where: str, create_with: str) -> SchemaNotCurrent:
    return SchemaNotCurrent(f"{where}: no store has been created here (wrong URL?); create it with {create_with}")


def require_current(conn: Connection, kind: str, where: str, create_with: str) -> None:
    """Refuse a store this program must neither create nor migrate; ``create_with`` names the command that does."""
    script = _script(kind)
    head = script.get_current_head()
    current = current_revision(conn)
    if current == head:
        return
    if current is None:
        raise not_created(where, create_with)
    _known(script, current, head, where)
    raise SchemaNotCurrent(f"{where}: the schema ({current}) is older than this software's ({head}); "
                           f"back the store up, then migrate it with {create_with}")


def upgrade(conn: Connection, kind: str, where: str) -> SchemaChange | None:
    """Bring the schema on ``conn`` to head. Returns what ran, if anything."""
    script = _script(kind)
    head = script.get_current_head()
    current = current_revision(conn)
    if current == head:
        return None
    if current is not None:
        _known(script, current, head, where)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / kind))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    return SchemaChange(kind, current, str(head))
