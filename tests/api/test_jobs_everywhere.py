"""Every generation is a job: a smart image goes through the job queue like a storyboard (the
admission limits, a cancel by id, a bounded wait that cancels on timeout), and a request that
waits on a job is woken by the hub's terminal event or, without one, by the database."""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.crud import character as character_crud
from imageforge.api.crud import generation as generation_crud
from imageforge.api.crud import user as user_crud
from imageforge.api.main import create_app
from imageforge.api.models.character import CharacterCreate
from imageforge.api.models.generation import Generation, JobSpec, SmartImageJob
from imageforge.api.models.user import UserCreate
from imageforge.api.services.characters import CharacterNotFoundError, gallery_path
from imageforge.api.services.event_hub import EventHub
from imageforge.api.services.smart_images import add_to_gallery
from imageforge.api.services.waiting import wait_for_job
from tests.api.support import FakePipeline, add_user, make_settings, scene_result, wait_for_status

CHARACTERS = "/api/v1/characters"
BODY = {"prompt": "close-up portrait with dramatic lighting", "seed": 3, "numVariations": 2}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 60, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _character(client: TestClient, headers: dict[str, str]) -> str:
    created = client.post(CHARACTERS, json={"name": "Maya", "description": "red hair"}, headers=headers)
    assert created.status_code == 201, created.text
    cid = str(created.json()["id"])
    uploaded = client.post(
        f"{CHARACTERS}/{cid}/references",
        files={"image": ("ref.png", _png(), "image/png")},
        data={"kind": "master", "angle": "front"},
        headers=headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    return cid


def _smart_jobs(client: TestClient, headers: dict[str, str], cid: str) -> list[dict[str, Any]]:
    rows = client.get("/api/generations", headers=headers).json()["data"]
    return [row for row in rows if row["id"].startswith(f"char-{cid}-")]


def _held_app(tmp_path: Path, **overrides: Any) -> tuple[TestClient, FakePipeline]:
    settings = make_settings(tmp_path, **overrides)
    pipeline = FakePipeline(settings.trace_root)
    pipeline.hold.clear()  # jobs wait before their first scene until the test releases them
    return TestClient(create_app(settings, pipeline=pipeline)), pipeline


# A smart image is a job --------------------------------------------------------------------
def test_a_smart_image_is_a_stored_job_that_a_cancel_by_id_stops(tmp_path: Path) -> None:
    client, pipeline = _held_app(tmp_path, workers=1)
    with client, ThreadPoolExecutor(1) as pool:
        alice = add_user(client, "alice@example.com")
        cid = _character(client, alice)
        waiting = pool.submit(client.post, f"{CHARACTERS}/{cid}/generate-smart-image", json=BODY, headers=alice)
        deadline = time.monotonic() + 20
        while not (jobs := _smart_jobs(client, alice, cid)):
            assert time.monotonic() < deadline, "the smart image never became a job"
            time.sleep(0.02)
        generation_id = jobs[0]["id"]
        assert jobs[0]["status"] in ("queued", "running")
        with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
            row = session.get(Generation, generation_id)
            assert row is not None
            spec = JobSpec.model_validate(row.request)
        # Everything the job needs is in its stored spec: any process can run it.
        assert spec.kind == "smart_image" and spec.smart is not None and spec.smart.character_id == cid
        assert spec.plan is not None and spec.characters == [cid] and spec.settings.strict
        assert list(spec.character_references) == [cid]

        assert client.post(f"/api/generations/{generation_id}/cancel", headers=alice).status_code == 200
        pipeline.hold.set()
        response = waiting.result(timeout=30)
    assert response.status_code == 503, response.text
    assert response.json()["success"] is False and "cancelled" in response.json()["error"]


def test_a_smart_image_that_outlives_its_timeout_is_cancelled_with_504(tmp_path: Path) -> None:
    client, pipeline = _held_app(tmp_path, workers=1, smart_image_timeout_s=0.5)
    with client:
        alice = add_user(client, "alice@example.com")
        cid = _character(client, alice)
        started = time.monotonic()
        response = client.post(f"{CHARACTERS}/{cid}/generate-smart-image", json=BODY, headers=alice)
        assert time.monotonic() - started < 10
        assert response.status_code == 504, response.text
        error = response.json()["error"]
        assert error.startswith("Gateway Timeout") and "0.5 s" in error and "SMART_IMAGE_TIMEOUT_S" in error
        pipeline.hold.set()
        (job,) = _smart_jobs(client, alice, cid)
        assert wait_for_status(client, job["id"], alice, {"cancelled", "completed", "failed"})["status"] == "cancelled"


def test_a_smart_image_obeys_both_admission_limits(tmp_path: Path) -> None:
    client, pipeline = _held_app(tmp_path, workers=1, queue_size=1, max_jobs_per_user=1, retry_after_s=9)
    with client:
        alice = add_user(client, "alice@example.com")
        bob = add_user(client, "bob@example.com")
        cid = _character(client, alice)
        assert client.post("/api/generate", json={"prompt": "a cat"}, headers=alice).status_code == 202
        # Alice's own share is used up.
        mine = client.post(f"{CHARACTERS}/{cid}/generate-smart-image", json=BODY, headers=alice)
        assert mine.status_code == 429 and mine.headers["Retry-After"] == "9"
        assert mine.json()["success"] is False and "max_jobs_per_user" in mine.json()["error"]
        # Bob fills the one queue slot (Alice's job holds the one worker): Carol finds the queue full.
        wait_for_status(
            client, client.get("/api/generations", headers=alice).json()["data"][0]["id"], alice, {"running"}
        )
        assert client.post("/api/generate", json={"prompt": "a dog"}, headers=bob).status_code == 202
        carol = add_user(client, "carol@example.com")
        carol_cid = _character(client, carol)
        full = client.post(f"{CHARACTERS}/{carol_cid}/generate-smart-image", json=BODY, headers=carol)
        assert full.status_code == 429 and full.headers["Retry-After"] == "9"
        assert "queue is full" in full.json()["error"]
        assert _smart_jobs(client, alice, cid) == [] and _smart_jobs(client, carol, carol_cid) == []
        pipeline.hold.set()


def test_the_assistants_actions_are_jobs_under_the_same_cap(tmp_path: Path) -> None:
    client, pipeline = _held_app(tmp_path, workers=1, max_jobs_per_user=1)
    with client:
        alice = add_user(client, "alice@example.com")
        assert client.post("/api/generate", json={"prompt": "a cat"}, headers=alice).status_code == 202
        answer = client.post(
            "/api/assistant/messages", json={"message": "make a storyboard about artisan coffee"}, headers=alice
        )
        assert answer.status_code == 200, answer.text
        reply = answer.json()
        assert reply["actions"] == [] and reply["generation_id"] is None
        assert reply["reply"].startswith("I can't start the storyboard now.")
        assert "the most one user may have" in reply["reply"]
        assert client.get("/api/generations", headers=alice).json()["count"] == 1
        pipeline.hold.set()


def test_the_gallery_image_is_added_once_per_job_and_never_to_a_deleted_character(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = create_db_engine(settings)
    init_db(engine)
    with Session(engine) as session:
        user = user_crud.create_user(
            session=session, user_create=UserCreate(email="g@example.com", password="pw12345678")
        )
        character = character_crud.create_character(
            session=session,
            user_id=user.id,
            create=CharacterCreate(name="Maya"),  # type: ignore[arg-type]
        )
        user_id, cid = int(user.id), character.id  # type: ignore[arg-type]
    smart = SmartImageJob(user_id=user_id, character_id=cid, character_name="Maya", prompt="a portrait", style="custom")
    result = scene_result(settings.trace_root, "char-job", 1, 2)
    first = add_to_gallery(engine, "char-job", smart, result, settings.data_dir)
    # A resumed job (the process died after adding it) finds the image instead of adding another.
    again = add_to_gallery(engine, "char-job", smart, result, settings.data_dir)
    assert again.id == first.id and first.filename.startswith("maya_smart_") and first.attempts == 1
    with Session(engine) as session:
        assert len(character_crud.list_gallery(session=session, character_id=cid)) == 1
    assert gallery_path(settings.data_dir, first).is_file()
    # Another user's job cannot add to this character: it is "not found" for them.
    stranger = smart.model_copy(update={"user_id": user_id + 1})
    with pytest.raises(CharacterNotFoundError):
        add_to_gallery(engine, "char-other", stranger, result, settings.data_dir)


# Waiting on a job --------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_db_engine(make_settings(tmp_path))
    init_db(engine)
    with Session(engine) as session:
        user = user_crud.create_user(
            session=session, user_create=UserCreate(email="w@example.com", password="password123")
        )
        generation_crud.create_generation(
            session=session,
            generation_id="g1",
            user_id=user.id,
            concept="c",
            request={},  # type: ignore[arg-type]
        )
    return engine


def _finish(engine: Engine, status: str = "completed") -> None:
    with Session(engine) as session:
        row = session.get(Generation, "g1")
        assert row is not None
        row.status = status
        session.add(row)
        session.commit()


def test_the_terminal_event_wakes_the_waiter_before_the_next_poll(engine: Engine) -> None:
    hub = EventHub()

    async def scenario() -> tuple[str, float]:
        waiter = asyncio.create_task(wait_for_job(hub=hub, engine=engine, generation_id="g1", timeout_s=30, poll_s=20))
        await asyncio.sleep(0.2)
        assert hub.subscribers("g1") == 1
        clock = time.monotonic()
        await asyncio.to_thread(_finish, engine)
        hub.publish("g1", {"type": "status", "status": "completed"})
        outcome = await waiter
        return outcome, time.monotonic() - clock

    outcome, elapsed = asyncio.run(scenario())
    assert outcome == "completed" and elapsed < 5  # far below the 20 s poll
    assert hub.subscribers("g1") == 0


def test_without_an_event_the_database_poll_finds_the_end(engine: Engine) -> None:
    hub = EventHub()

    async def scenario() -> str:
        waiter = asyncio.create_task(
            wait_for_job(hub=hub, engine=engine, generation_id="g1", timeout_s=30, poll_s=0.05)
        )
        await asyncio.sleep(0.2)
        await asyncio.to_thread(_finish, engine, "failed")  # no event published
        return await waiter

    assert asyncio.run(scenario()) == "failed"


def test_a_wait_ends_on_timeout_or_when_the_client_leaves(engine: Engine) -> None:
    hub = EventHub()

    async def gone() -> bool:
        return True

    timed_out = asyncio.run(wait_for_job(hub=hub, engine=engine, generation_id="g1", timeout_s=0.2, poll_s=0.05))
    left = asyncio.run(wait_for_job(hub=hub, engine=engine, generation_id="g1", timeout_s=30, disconnected=gone))
    assert (timed_out, left) == ("timeout", "disconnected")
    assert hub.subscribers("g1") == 0
    with pytest.raises(ValueError, match="timeout_s"):
        asyncio.run(wait_for_job(hub=hub, engine=engine, generation_id="g1", timeout_s=0))
