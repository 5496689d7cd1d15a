"""The database engine: SQLite under the data folder by default, PostgreSQL by URL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine, text

from imageforge.api.core.config import Settings
from imageforge.api.core.migrations import upgrade_schema
from imageforge.api.models import character, conversation, generation, preset, user  # noqa: F401  (registers the tables)
from imageforge.tools.storage import private_dirs, private_file

__all__ = [
    "DatabaseProbe",
    "autocommit_reads",
    "create_db_engine",
    "init_db",
    "ping",
    "session_scope",
    "sqlalchemy_url",
]


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the ``.[postgres]`` extra), not psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets status reads proceed while a worker writes; the busy timeout turns
    # momentary lock contention into a short wait instead of "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _owner_only_sqlite(url: str) -> None:
    """The SQLite file owner-only: it holds password hashes (tools.storage.private_file)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    private_file(Path(database))


def create_db_engine(settings: Settings) -> Engine:
    url = sqlalchemy_url(settings.effective_database_url)
    if url.startswith("sqlite"):
        if settings.database_url is None:
            private_dirs(settings.data_dir)
        _owner_only_sqlite(url)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 10}, pool_size=20, max_overflow=20
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql+psycopg"):
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise RuntimeError(
                "IMAGEFORGE_DATABASE_URL is PostgreSQL but psycopg is not installed: pip install 'imageforge[postgres]'"
            ) from exc
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def autocommit_reads(engine: Engine) -> Engine:
    """The engine for the lookups every request makes (the caller's user, a status document):
    on PostgreSQL, ``engine``'s pool in autocommit mode. In a transaction a lookup costs three
    round trips, BEGIN, the SELECT and the ROLLBACK when the session closes; in autocommit,
    one (under benchmarks/bench_distributed.py the status request's median in the server went
    from 24 to 14 ms). SQLite has no round trip to save, and switching its connections' mode
    cost more than it saved (bench_service.py: status p50 10.9 -> 16 ms), so it keeps
    ``engine``. Only for reads that need no snapshot across statements."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def init_db(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)
    upgrade_schema(engine)  # columns added since a table was created


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, OSError):
        return False


class DatabaseProbe:
    """Whether the database answers, from a ``SELECT 1`` every ``every_s`` in the background.

    Load balancers poll ``/health`` several times a second per API process; with a query of
    its own, each poll paid a thread hop and a round trip to a database busy with the jobs'
    checkpoints, and that was its whole tail latency. Read from here, the answer is at most
    ``every_s`` old. A probe that hangs (a database cut off without a reset) counts as
    unreachable once the last answer is ``stale_after_s`` old.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        every_s: float = 1.0,
        stale_after_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.every_s = every_s
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._answered_at: float | None = None  # when the last successful probe started
        self._decided_at = float("-inf")  # when the probe whose answer stands started
        self._task: asyncio.Task[None] | None = None

    @property
    def reachable(self) -> bool:
        return self._answered_at is not None and self._clock() - self._answered_at < self.stale_after_s

    async def probe(self) -> bool:
        started = self._clock()
        try:
            answered = await asyncio.to_thread(ping, self.engine)
        except Exception:  # whatever the driver raised, the database did not answer
            answered = False
        if started >= self._decided_at:  # a slower, older probe does not overrule a newer one
            self._decided_at = started
            self._answered_at = started if answered else None
        return answered

    async def start(self) -> None:
        await self.probe()
        self._task = asyncio.create_task(self._probe_forever(), name="imageforge-database-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.probe()


def session_scope(engine: Engine) -> Iterator[Session]:
    """A session per request (FastAPI dependency) or per unit of work (``with``-less use)."""
    with Session(engine) as session:
        yield session
