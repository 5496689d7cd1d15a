"""The durable LangGraph checkpointer: SQLite under the data folder, or PostgreSQL by URL.

The generation id is the checkpoint thread id, so a job that a dead process left running
continues from its last finished scene when a new process starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from imageforge.api.core.config import Settings
from imageforge.graph.checkpoint import serializer

__all__ = ["checkpoint_serializer", "open_checkpointer"]


def checkpoint_serializer() -> JsonPlusSerializer:
    """Checkpoints are read back with an allowlist of the graph's state types only, so a
    tampered checkpoint database cannot make the server build arbitrary objects."""
    return serializer()


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver]:
    if settings.is_postgres:
        try:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        except ImportError as exc:
            raise RuntimeError(
                "IMAGEFORGE_DATABASE_URL is PostgreSQL, which needs the postgres extra for checkpoints: "
                "pip install 'imageforge[postgres]'"
            ) from exc
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        url = settings.effective_database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        # A pool, not one shared connection: several jobs checkpoint at once on one loop, and a
        # job cancelled in the middle of a query makes psycopg close that connection. The pool
        # checks a connection before lending it and replaces a closed one, so one cancelled job
        # cannot fail every job after it (seen: "the connection is closed" on a worker).
        async with AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(4, settings.workers * 2),
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            check=AsyncConnectionPool.check_connection,
            open=False,
        ) as pool:
            saver = AsyncPostgresSaver(pool, serde=checkpoint_serializer())  # type: ignore[arg-type]
            await saver.setup()
            yield saver
        return

    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from imageforge.tools.storage import private_file

    private_file(settings.checkpoint_path)  # owner-only, like the database (runs' prompts and settings)

    async with aiosqlite.connect(str(settings.checkpoint_path)) as connection:
        sqlite_saver = AsyncSqliteSaver(connection, serde=checkpoint_serializer())
        await sqlite_saver.setup()
        yield sqlite_saver
