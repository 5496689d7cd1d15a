"""The parts of distributed execution that need no server: the start-up refusal on SQLite,
the worker command's errors, the reaper's decision on a stored row and the event bridge's
bookkeeping. The processes themselves are tested in test_distributed.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlmodel import Session
from typer.testing import CliRunner

from imageforge.api.cli.service import serve
from imageforge.api.cli.worker import worker
from imageforge.api.core.config import get_settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.crud import generation as crud
from imageforge.api.crud import user as user_crud
from imageforge.api.main import create_app
from imageforge.api.models.generation import Generation
from imageforge.api.models.user import UserCreate
from imageforge.api.services.event_hub import EventHub
from imageforge.api.services.redis_events import EventBridge, live_from_event
from imageforge.api.worker.reaper import requeue_or_fail
from tests.api.support import cli_environment, make_settings

REDIS = "redis://127.0.0.1:1/0"  # never contacted by these tests


def test_the_api_refuses_a_broker_with_sqlite_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        create_app(make_settings(tmp_path, broker_url=REDIS))
    message = str(refused.value.code)
    assert "\n" not in message
    assert "IMAGEFORGE_BROKER_URL" in message and "PostgreSQL" in message


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    cli_environment(tmp_path, monkeypatch)
    app = typer.Typer()
    app.command()(worker)
    app.command("other")(lambda: None)  # two commands, so `worker` is addressed by name
    yield app
    get_settings.cache_clear()


def test_the_worker_needs_a_broker_and_postgres(cli: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    no_broker = runner.invoke(cli, ["worker"])
    assert no_broker.exit_code == 2
    assert "needs IMAGEFORGE_BROKER_URL" in no_broker.output and "Traceback" not in no_broker.output

    monkeypatch.setenv("IMAGEFORGE_BROKER_URL", REDIS)
    on_sqlite = runner.invoke(cli, ["worker", "--device", "cpu"])
    assert on_sqlite.exit_code == 2
    assert "needs PostgreSQL" in on_sqlite.output and "Traceback" not in on_sqlite.output

    bad = runner.invoke(cli, ["worker", "--concurrency", "0"])
    assert bad.exit_code == 2


def test_serve_refuses_an_unusable_broker_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli_environment(tmp_path, monkeypatch)
    app = typer.Typer()
    app.command()(serve)
    app.command("other")(lambda: None)
    monkeypatch.setenv("IMAGEFORGE_BROKER_URL", REDIS)
    on_sqlite = CliRunner().invoke(app, ["serve"])
    assert on_sqlite.exit_code == 2 and "needs PostgreSQL" in on_sqlite.output, on_sqlite.output
    monkeypatch.setenv("IMAGEFORGE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never reached
    get_settings.cache_clear()
    unreachable = CliRunner().invoke(app, ["serve"])
    assert unreachable.exit_code == 2 and "Cannot reach the broker" in unreachable.output, unreachable.output
    assert "Traceback" not in unreachable.output
    get_settings.cache_clear()


def _running_job(tmp_path: Path) -> tuple[Any, str]:
    engine = create_db_engine(make_settings(tmp_path))
    init_db(engine)
    with Session(engine) as session:
        user = user_crud.create_user(session=session, user_create=UserCreate(email="r@example.com", password="x" * 12))
        crud.create_generation(
            session=session,
            generation_id="g1",
            user_id=user.id,
            concept="c",
            request={},  # type: ignore[arg-type]
        )
        crud.start_generation(session=session, generation_id="g1")
    return engine, "g1"


def test_the_reaper_requeues_a_lost_run_once_and_fails_it_at_the_limit(tmp_path: Path) -> None:
    engine, job = _running_job(tmp_path)
    with Session(engine) as session:
        assert requeue_or_fail(session, job, runs=2, give_up=False, error="e") is None  # another run: not this one
    with Session(engine) as session:
        assert requeue_or_fail(session, job, runs=1, give_up=False, error="e") == "requeued"
    with Session(engine) as session:
        row = session.get(Generation, job)
        assert row is not None and row.status == "queued" and "worker stopped" in row.current_step
        assert requeue_or_fail(session, job, runs=1, give_up=False, error="e") is None  # already acted on
    with Session(engine) as session:
        crud.start_generation(session=session, generation_id=job)  # a worker took it again: run 2
    with Session(engine) as session:
        assert requeue_or_fail(session, job, runs=2, give_up=True, error="lost 3 workers") == "failed"
    with Session(engine) as session:
        row = session.get(Generation, job)
        assert row is not None and row.status == "failed" and row.error == "lost 3 workers"
    engine.dispose()


def test_live_state_follows_the_events() -> None:
    live = live_from_event(None, {"type": "status", "status": "running", "progress": 5, "current_step": "planning"})
    live = live_from_event(live, {"type": "attempt_started", "scene": 2, "progress": 40, "current_step": "scene 2"})
    live = live_from_event(live, {"type": "variations_scored", "scene": 1, "progress": 45})
    assert live == {"status": "running", "progress": 45, "current_step": "scene 2", "scene": 2}


def test_the_bridge_fans_out_and_invalidates_only_after_stored_changes() -> None:
    async def scenario() -> None:
        hub = EventHub()
        changed: list[str] = []
        bridge = EventBridge(None, hub, on_change=changed.append)  # type: ignore[arg-type]
        queue = hub.subscribe("g")
        bridge.deliver("g", {"type": "status", "status": "running", "progress": 1, "current_step": "starting"})
        bridge.deliver("g", {"type": "attempt_started", "scene": 1, "progress": 30, "current_step": "scene 1"})
        assert bridge.live["g"]["scene"] == 1 and bridge.live["g"]["progress"] == 30
        bridge.deliver("g", {"type": "scene_done", "scene": 1, "progress": 60, "current_step": "scene 1 done"})
        bridge.deliver("g", {"type": "status", "status": "completed", "progress": 100, "current_step": "done"})
        assert "g" not in bridge.live  # a finished job has no live state beyond its row
        assert changed == ["g", "g", "g"]  # running, scene_done, completed; not attempt_started
        kinds = [queue.get_nowait()["type"] for _ in range(4)]
        assert kinds == ["status", "attempt_started", "scene_done", "status"]

    asyncio.run(scenario())
