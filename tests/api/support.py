"""Helpers of the API tests: settings in a temporary folder, users, tokens, and a scripted
pipeline that stands in for the storyboard graph in the TestClient tier."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlmodel import Session

from imageforge.api.core import security
from imageforge.api.core.config import Settings
from imageforge.api.core.security import create_access_token
from imageforge.api.crud import user as crud
from imageforge.api.models.generation import JobSpec
from imageforge.api.models.user import UserCreate
from imageforge.scoring.schemas import EnsembleReport, ScorerInfo, VariationScore
from imageforge.tools.storage import save_png
from imageforge.traces import layout
from imageforge.traces.schemas import Attempt, RunSummary, SceneResult
from imageforge.traces.writer import TraceWriter

SECRET = "test-secret-" + "x" * 40

#: The service's own hasher: argon2id at its default cost (about 0.15-0.4 s a hash).
DEFAULT_PASSWORD_HASH = security._password_hash
#: argon2id at its cheapest (about 1 ms a hash), for the many tests that only need users.
CHEAP_PASSWORD_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "trace_root": tmp_path / "traces",
        "jwt_secret": SECRET,
        "workers": 2,
        "queue_size": 20,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def scene_result(trace_root: Path, generation_id: str, scene: int, variations: int) -> SceneResult:
    """A finished scene with real PNG files, shaped like the graph's."""
    folder = layout.scene_dir(trace_root, generation_id, scene)
    scores = []
    for index in range(1, variations + 1):
        path = save_png(
            Image.new("RGB", (16, 16), (40 * index, 10 * scene, 90)),
            folder / layout.image_file(index),
        )
        scores.append(
            VariationScore(
                attempt=1,
                index=index,
                seed=1000 * scene + index,
                path=str(path),
                components={"pickscore": 60.0 + index, "clip": 50.0},
                overall=55.0 + index,
                consistency=None if scene == 1 else 70.0,
                rank=variations - index + 1,
            )
        )
    best = scores[-1]
    attempt = Attempt(
        attempt=1,
        seeds=[s.seed for s in scores],
        variations=scores,
        best_index=best.index,
        quality=best.overall,
        consistency=best.consistency,
        passed=True,
        reason="Passed",
        generator="fake",
        generator_model="fake-model",
        timings_s={"generate": 0.01, "score": 0.02},
    )
    return SceneResult(
        scene_number=scene,
        status="passed",
        enhanced_prompt=f"enhanced scene {scene}",
        winner=best,
        winner_path=best.path,
        winner_attempt=1,
        attempts=[attempt],
        reason="highest overall",
        ensemble=EnsembleReport(
            scorers=[ScorerInfo(slot="pickscore", name="fake")],
            effective_weights={"pickscore": 1.0},
        ),
        timings_s={"generate": 0.01, "score": 0.02},
    )


class FakePipeline:
    """Plays the graph's event sequence and writes a trace, without any model.

    ``hold`` (a threading.Event, since the app runs on the TestClient's own loop) keeps each
    run waiting before its first scene until the test sets it; a run held longer than
    ``HOLD_TIMEOUT_S`` fails, naming the hold, instead of hanging the test.
    """

    HOLD_TIMEOUT_S = 60.0

    def __init__(self, trace_root: Path, *, scenes: int = 2, variations: int = 2) -> None:
        self.trace_root = trace_root
        self.scenes = scenes
        self.variations = variations
        self.hold = threading.Event()
        self.hold.set()
        self.calls: list[tuple[str, bool]] = []
        self.started: list[str] = []

    async def __call__(
        self,
        generation_id: str,
        spec: JobSpec,
        *,
        checkpointer: Any,
        resume: bool,
        on_event: Callable[[dict[str, Any]], Any],
        should_stop: Callable[[], bool],
    ) -> RunSummary:
        self.calls.append((generation_id, resume))
        writer = TraceWriter(self.trace_root, generation_id)
        started = datetime.now(UTC)
        count = len(spec.scenes) if spec.scenes else (spec.num_scenes or self.scenes)

        async def event(kind: str, scene: int | None = None, **data: Any) -> None:
            await on_event({"type": kind, "scene": scene, "message": kind, "data": data})

        def summary(status: str, results: list[SceneResult]) -> RunSummary:
            value = RunSummary(
                generation_id=generation_id,
                status=status,  # type: ignore[arg-type]
                concept=spec.concept,
                settings=spec.settings.model_dump(mode="json"),
                scenes=results,
                started_at=started,
                finished_at=datetime.now(UTC),
                elapsed_s=0.1,
            )
            writer.summary(value)
            return value

        await event("run_started", generation_id=generation_id)
        await event(
            "plan_ready",
            scenes=[{"scene_number": k, "prompt": f"scene {k} of {spec.concept}"} for k in range(1, count + 1)],
        )
        self.started.append(generation_id)
        results: list[SceneResult] = []
        for scene in range(1, count + 1):
            deadline = time.monotonic() + self.HOLD_TIMEOUT_S
            while not self.hold.is_set():
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"FakePipeline.hold was not set within {self.HOLD_TIMEOUT_S} s: {generation_id} never started"
                    )
                await asyncio.sleep(0.01)
            if should_stop():
                return summary("cancelled", results)
            await event("scene_started", scene=scene)
            await event("attempt_started", scene=scene, attempt=1)
            result = await asyncio.to_thread(
                scene_result, self.trace_root, generation_id, scene, spec.settings.num_variations
            )
            results.append(result)
            summary("running", results)
            await event("scene_done", scene=scene, total=count, result=result.model_dump(mode="json"))
        await event("run_done", status="completed")
        return summary("completed", results)


def add_user(client: TestClient, email: str, password: str = "password123", *, admin: bool = False) -> dict[str, str]:
    """Create a user (an administrator with ``admin``) directly in the database and return bearer
    headers for it."""
    app = client.app
    with Session(app.state.engine) as session:  # type: ignore[attr-defined]
        user = crud.create_user(
            session=session, user_create=UserCreate(email=email, password=password, is_superuser=admin)
        )
    token = create_access_token(user, app.state.settings)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


def wait_for_status(
    client: TestClient,
    generation_id: str,
    headers: dict[str, str],
    statuses: set[str],
    timeout_s: float = 20,
) -> dict[str, Any]:
    """Poll the status document until it reaches one of ``statuses`` (a bound, not a timing check)."""
    deadline = time.monotonic() + timeout_s
    while True:
        document = client.get(f"/api/generations/{generation_id}", headers=headers).json()
        if document["status"] in statuses:
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"generation {generation_id} stuck in {document['status']}: {document}")
        time.sleep(0.02)


def cli_environment(tmp_path: Path, monkeypatch: Any) -> None:
    """What an ``imageforge`` command sees in the CLI tests: a data folder under ``tmp_path``,
    the test JWT secret, no stray ``.env`` and no settings cached from an earlier test."""
    from imageforge.api.core.config import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMAGEFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IMAGEFORGE_JWT_SECRET", SECRET)
    get_settings.cache_clear()
