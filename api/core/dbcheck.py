"""The database's own consistency check, for ``/health?deep=1``.

``ping`` (``SELECT 1``) succeeds on a SQLite file whose pages are corrupt: only reading the
pages tells. SQLite has ``PRAGMA quick_check`` (every page and index entry, without
cross-checking index contents, so it runs in about the time of a full read). PostgreSQL has
no built-in equivalent without the amcheck extension; reading every table in full makes the
server verify each page it reads (and its checksum, where data checksums are on).
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["integrity_problems"]

#: The first few problems are enough to say "corrupt"; quick_check can list thousands.
MAX_PROBLEMS = 5


def integrity_problems(engine: Engine) -> list[str]:
    """What the database's check found: ``[]`` when it is sound. Blocking; may take as long
    as reading the whole database."""
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                rows = connection.execute(text(f"PRAGMA quick_check({MAX_PROBLEMS})")).scalars().all()
                return [] if rows == ["ok"] else [str(row) for row in rows]
            preparer = connection.dialect.identifier_preparer
            for table in inspect(connection).get_table_names():
                connection.execute(text(f"SELECT count(*) FROM {preparer.quote(table)}")).scalar()
            return []
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        return [f"the database could not be read: {type(cause).__name__}"]
