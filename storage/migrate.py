"""Schema versions for the stores, recorded by Alembic.

A store written by a newer kiosk is refused rather than opened: an older
program would not know the newer tables' rules and could break them.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


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


def upgrade(conn: Connection, kind: str, where: str) -> bool:
    """Bring the schema on ``conn`` to head. Returns True when something ran."""
    script = _script(kind)
    head = script.get_current_head()
    current = current_revision(conn)
    if current == head:
        return False
    if current is not None:
        _known(script, current, head, where)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / kind))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    return True
