"""The service on PostgreSQL: tables, history and the durable checkpointer, including a
SIGKILL in the middle of a job. .ci/run starts a local PostgreSQL and sets
IMAGEFORGE_TEST_POSTGRES_URL; elsewhere these tests skip."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, create_engine, text

from imageforge.api.core.db import autocommit_reads, sqlalchemy_url
from tests.api.server import SLOW_GENERATOR_ENV, Server, wait_until
from tests.api.test_api_server import FINAL, _scene_files, assert_images_served, submit

POSTGRES_URL = os.environ.get("IMAGEFORGE_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.integration,  # a uvicorn process against PostgreSQL
    pytest.mark.skipif(
        not POSTGRES_URL, reason="IMAGEFORGE_TEST_POSTGRES_URL is not set (.ci/run starts PostgreSQL and sets it)"
    ),
    pytest.mark.skipif(
        not all(__import__("importlib").util.find_spec(m) for m in ("psycopg", "langgraph.checkpoint.postgres")),
        reason="the postgres extra is not installed: pip install 'imageforge[postgres]'",
    ),
]


def test_jobs_persist_and_resume_after_sigkill_on_postgres(tmp_path: Path) -> None:
    server = Server(
        tmp_path,
        {"IMAGEFORGE_DATABASE_URL": str(POSTGRES_URL), **SLOW_GENERATOR_ENV, "SLOW_GENERATOR_DELAY_S": "1.5"},
    )
    server.start()
    user = server.add_user(f"pg-{uuid.uuid4().hex[:8]}@example.com")
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            job = submit(client, user, "Artisan coffee that starts your morning right")
            wait_until(
                client,
                f"/api/generations/{job}",
                user,
                lambda d: (
                    [s["status"] for s in d["storyboard_plan"]["scenes"]][:1] in (["passed"], ["accepted_with_warning"])
                ),
            )
            server.kill()
        trace_dir = tmp_path / "traces" / job
        before = _scene_files(trace_dir, 1)

        server.start(SLOW_GENERATOR_DELAY_S="0")
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            done = wait_until(client, f"/api/generations/{job}", user, lambda d: d["status"] in FINAL)
            assert done["status"] == "completed", server.log()
            assert _scene_files(trace_dir, 1) == before  # scene 1 was not generated again
            assert json.loads((trace_dir / "summary.json").read_text())["status"] == "completed"
            assert_images_served(client, done, user)
            history = client.get("/api/generations", headers=user).json()
            assert [g["id"] for g in history["data"]] == [job]
    finally:
        server.stop()


async def test_a_connection_closed_under_one_job_does_not_fail_the_others(tmp_path: Path) -> None:
    """psycopg closes a connection when a cancelled job interrupts its query ("query
    cancellation interrupted (CancelledError): closing connection"). With one shared connection
    every later job of the process then failed with "the connection is closed" (seen on a
    worker); the pool replaces a closed connection before lending it again."""
    from imageforge.api.core.checkpoints import open_checkpointer
    from tests.api.support import make_settings

    settings = make_settings(tmp_path, database_url=str(POSTGRES_URL), workers=1)
    config = {"configurable": {"thread_id": f"pg-{uuid.uuid4().hex[:8]}", "checkpoint_ns": ""}}
    async with open_checkpointer(settings) as saver:
        for _ in range(3):
            async with saver.conn.connection() as connection:  # type: ignore[union-attr]
                await connection.close()  # what psycopg does to the connection of an interrupted query
            assert await saver.aget_tuple(config) is None  # type: ignore[arg-type]  # the next job still checkpoints


def test_per_request_lookups_on_postgres_open_no_transaction() -> None:
    """The caller's user and status documents are read in autocommit: the session leaves no
    transaction open behind its SELECT, so closing it sends no ROLLBACK (one round trip, not
    three: BEGIN, SELECT, ROLLBACK)."""
    from psycopg.pq import TransactionStatus  # the postgres extra: imported once the skip has passed

    engine = create_engine(sqlalchemy_url(str(POSTGRES_URL)))
    try:
        cases = ((autocommit_reads(engine), TransactionStatus.IDLE), (engine, TransactionStatus.INTRANS))
        for reader, expected in cases:
            with Session(reader) as session:
                assert tuple(session.exec(text("SELECT 1")).one()) == (1,)  # type: ignore[call-overload]
                raw = session.connection().connection.dbapi_connection
                assert raw is not None and raw.info.transaction_status == expected
    finally:
        engine.dispose()
