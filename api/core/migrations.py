"""Columns that later versions added to existing tables, added to a database created earlier.

``SQLModel.metadata.create_all`` creates missing tables but never alters an existing one, and
deployments already hold SQLite (or PostgreSQL) databases from earlier versions. Each step
here is idempotent: it looks at the live table and adds only what is missing, so it runs on
every start. New tables need no step (``create_all`` makes them).
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from imageforge.api.models.user import new_public_id

__all__ = ["upgrade_schema"]

logger = logging.getLogger(__name__)


def _user_columns(connection: Connection) -> None:
    """Issue 10: a random never-reused public id, an admin flag and the token version."""
    columns = {column["name"] for column in inspect(connection).get_columns("user")}
    false = "false" if connection.dialect.name == "postgresql" else "0"
    table = connection.dialect.identifier_preparer.quote("user")  # a reserved word in PostgreSQL
    added = []
    if "public_id" not in columns:
        connection.execute(text(f"ALTER TABLE {table} ADD COLUMN public_id VARCHAR(32)"))
        added.append("public_id")
    if "is_superuser" not in columns:
        connection.execute(text(f"ALTER TABLE {table} ADD COLUMN is_superuser BOOLEAN NOT NULL DEFAULT {false}"))
        added.append("is_superuser")
    if "token_version" not in columns:
        connection.execute(text(f"ALTER TABLE {table} ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0"))
        added.append("token_version")
    missing = connection.execute(text(f"SELECT id FROM {table} WHERE public_id IS NULL")).scalars().all()
    for user_id in missing:
        connection.execute(
            text(f"UPDATE {table} SET public_id = :public_id WHERE id = :id"),
            {"public_id": new_public_id(), "id": user_id},
        )
    connection.execute(text(f"CREATE UNIQUE INDEX IF NOT EXISTS ix_user_public_id ON {table} (public_id)"))
    if added:
        logger.info("database upgraded: added user.%s (%d existing user(s))", ", user.".join(added), len(missing))


def upgrade_schema(engine: Engine) -> None:
    """Bring tables created by earlier versions up to the current models (after ``create_all``)."""
    with engine.begin() as connection:
        if inspect(connection).has_table("user"):
            _user_columns(connection)
