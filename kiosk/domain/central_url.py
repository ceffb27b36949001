"""Which URLs can name a central store: PostgreSQL through psycopg 3, or an embedded SQLite file.

Those two are what the schema, its migrations and the least-privilege roles
are built and tested on. Anything else is refused with that said, where it
would otherwise fail later with a driver's message ("No module named
'MySQLdb'"), or, for a config file, only at the first sync.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

EXAMPLES = "postgresql+psycopg://USER@HOST/DATABASE or sqlite:///PATH/central.db"


def central_url_problem(url: str) -> str | None:
    """Why ``url`` cannot name a central store, or None. The message never repeats the URL (it may hold a
    password)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not scheme:
        return f"not a database URL; give {EXAMPLES}"
    if scheme.lower() in ("postgresql", "postgresql+psycopg"):
        return None if rest.strip("/") else f"names no server; give {EXAMPLES}"
    if scheme.lower() == "sqlite":
        # sqlite:///relative.db or sqlite:////absolute.db; sqlite:// alone is a database in memory, lost on exit.
        return None if rest.startswith("/") and rest.strip("/") else "an embedded central store is a file: sqlite:///PATH"
    if scheme.lower().startswith("postgres"):  # postgres://, postgresql+psycopg2://: PostgreSQL, another spelling
        return f"write the scheme as postgresql+psycopg://, not {scheme}:// (the kiosk connects with psycopg 3)"
    return f"a central store is PostgreSQL or SQLite, not {scheme}://; give {EXAMPLES}"


def without_password(url: str) -> str:
    """``url`` with any password shown as ***, for messages, logs and records."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # an unparsable URL is shown as a placeholder
        return "<central url>"
