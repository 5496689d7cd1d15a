"""The service as users run it: a real uvicorn process on 127.0.0.1 with offline backends.

Covers submit -> SSE -> completed document with every image retrievable, cancelling one of
two running jobs, isolation between users, a full queue answering 429, and a SIGKILL in the
middle of a job followed by a restart that resumes it from its last finished scene.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.api.server import SLOW_GENERATOR_ENV, Server, read_sse, wait_until

pytestmark = pytest.mark.integration  # every test starts a uvicorn process

SMALL = {"num_variations": 2, "max_enhancement_iterations": 1, "max_retries": 0, "resolution": 128}
FINAL = {"completed", "failed", "cancelled"}


def submit(client: httpx.Client, headers: dict[str, str], prompt: str, **extra: Any) -> str:
    response = client.post(
        "/api/generate", json={"prompt": prompt, "num_scenes": 2, "settings": SMALL, **extra}, headers=headers
    )
    assert response.status_code == 202, response.text
    return str(response.json()["generation_id"])


def image_urls(document: dict[str, Any]) -> list[str]:
    urls = []
    for scene in document["storyboard_plan"]["scenes"]:
        if scene["reference_image_url"]:
            urls.append(scene["reference_image_url"])
        for attempt in scene["attempts"]:
            urls.extend(v["image_url"] for v in attempt["variations"])
    return urls


def assert_images_served(client: httpx.Client, document: dict[str, Any], headers: dict[str, str]) -> None:
    urls = image_urls(document)
    assert urls
    for url in urls:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, url
        assert response.content.startswith(b"\x89PNG")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # A small generator delay keeps jobs running long enough to be cancelled mid-run.
    instance = Server(tmp_path, {"IMAGEFORGE_WORKERS": "2", **SLOW_GENERATOR_ENV, "SLOW_GENERATOR_DELAY_S": "0.4"})
    with instance:
        yield instance


def test_submit_follow_cancel_and_isolate(server: Server) -> None:
    alice = server.add_user("alice@example.com")
    bob = server.add_user("bob@example.com")
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        # Submit, then follow it over SSE to the end.
        generation_id = submit(client, alice, "Artisan coffee that starts your morning right")
        events = read_sse(client, f"/api/generations/{generation_id}/events", alice)
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "state"
        for expected in ("run_started", "plan_ready", "scene_started", "variations_scored", "run_done"):
            assert expected in kinds, kinds
        assert [data["scene"] for kind, data in events if kind == "scene_done"] == [1, 2]
        assert events[-1][0] == "status" and events[-1][1]["status"] == "completed"
        progress = [data["progress"] for kind, data in events if "progress" in data and kind != "state"]
        assert progress == sorted(progress) and progress[-1] == 100

        document = client.get(f"/api/generations/{generation_id}", headers=alice).json()
        assert document["status"] == "completed" and document["progress"] == 100
        scenes = document["storyboard_plan"]["scenes"]
        assert [s["scene_number"] for s in scenes] == [1, 2]
        for scene in scenes:
            assert scene["enhanced_prompt"] and scene["quality_score"] is not None
            assert scene["component_scores"] and scene["attempts"]
        assert_images_served(client, document, alice)
        token = alice["Authorization"].split()[1]
        ws_url = server.base_url.replace("http", "ws") + f"/api/generations/{generation_id}/ws?token={token}"
        with connect(ws_url, open_timeout=10) as websocket:
            message = json.loads(websocket.recv(timeout=10))
        assert message["event"] == "state" and message["data"]["status"] == "completed"
        trace = client.get(f"/api/generations/{generation_id}/trace", headers=alice).json()
        assert trace["summary"]["status"] == "completed" and "scene_2/quality_scores.json" in trace["files"]

        # Another user sees none of it.
        for url in (
            f"/api/generations/{generation_id}",
            f"/api/generations/{generation_id}/trace",
            f"/api/generations/{generation_id}/events",
            image_urls(document)[0],
        ):
            assert client.get(url, headers=bob).status_code == 404, url
        assert client.post(f"/api/generations/{generation_id}/cancel", headers=bob).status_code == 404
        assert client.get("/api/generations", headers=bob).json()["count"] == 0

        # Two jobs run side by side; cancelling one leaves the other alone.
        doomed = submit(client, bob, "A lighthouse keeper's long night", num_scenes=3)
        spared = submit(client, bob, "A bicycle courier crossing the city")
        for job in (doomed, spared):
            wait_until(client, f"/api/generations/{job}", bob, lambda d: d["status"] == "running")
        cancel = client.post(f"/api/generations/{doomed}/cancel", headers=bob)
        assert cancel.status_code == 200 and cancel.json()["cancel_requested"] is True
        assert client.post(f"/api/generations/{doomed}/cancel", headers=bob).status_code == 200  # idempotent
        cancelled = wait_until(client, f"/api/generations/{doomed}", bob, lambda d: d["status"] in FINAL)
        finished = wait_until(client, f"/api/generations/{spared}", bob, lambda d: d["status"] in FINAL)
        assert cancelled["status"] == "cancelled"
        assert finished["status"] == "completed"
        kept = [s for s in cancelled["storyboard_plan"]["scenes"] if s["attempts"]]
        assert len(kept) < 3  # it stopped early ...
        for scene in kept:  # ... and kept what it had finished
            assert client.get(scene["reference_image_url"], headers=bob).status_code == 200
        assert_images_served(client, finished, bob)
        assert client.get(f"/api/generations/{doomed}/trace", headers=bob).json()["summary"]["status"] == "cancelled"
        assert client.get("/api/generations", headers=alice).json()["count"] == 1


def _scene_files(trace_dir: Path, scene: int) -> dict[str, tuple[int, int, bytes]]:
    folder = trace_dir / f"scene_{scene}"
    return {
        str(path.relative_to(trace_dir)): (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_full_queue_then_sigkill_mid_job_and_resume(tmp_path: Path) -> None:
    server = Server(
        tmp_path,
        {
            "IMAGEFORGE_WORKERS": "1",
            "IMAGEFORGE_QUEUE_SIZE": "1",
            "IMAGEFORGE_RETRY_AFTER_S": "5",
            **SLOW_GENERATOR_ENV,
            "SLOW_GENERATOR_DELAY_S": "1.5",
        },
    )
    server.start()
    alice = server.add_user("alice@example.com")
    try:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            first = submit(client, alice, "Artisan coffee that starts your morning right")
            wait_until(client, f"/api/generations/{first}", alice, lambda d: d["status"] == "running")
            second = submit(client, alice, "A rainy afternoon in a bookshop")  # waits in the queue
            refused = client.post("/api/generate", json={"prompt": "one too many", "settings": SMALL}, headers=alice)
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
            assert client.get("/api/generations", headers=alice).json()["count"] == 2  # the refusal stored nothing

            # Scene 1 finished, scene 2 is inside its (delayed) generator call: kill the server.
            wait_until(
                client,
                f"/api/generations/{first}",
                alice,
                lambda d: (
                    [s["status"] for s in d["storyboard_plan"]["scenes"]][:1] in (["passed"], ["accepted_with_warning"])
                ),
            )
            server.kill()
        trace_dir = tmp_path / "traces" / first
        before = _scene_files(trace_dir, 1)
        assert "scene_1/scene_result.json" in before and "scene_1/image_1.png" in before
        assert not (trace_dir / "scene_2" / "scene_result.json").exists()

        server.start(SLOW_GENERATOR_DELAY_S="0")
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            resumed = wait_until(client, f"/api/generations/{first}", alice, lambda d: d["status"] in FINAL)
            queued = wait_until(client, f"/api/generations/{second}", alice, lambda d: d["status"] in FINAL)
            assert resumed["status"] == "completed", server.log()
            assert queued["status"] == "completed", server.log()
            # No finished scene was generated again: scene 1's files are the very same files.
            assert _scene_files(trace_dir, 1) == before
            # The trace is continuous and nothing is lost.
            summary = json.loads((trace_dir / "summary.json").read_text())
            assert summary["status"] == "completed"
            assert [s["scene_number"] for s in summary["scenes"]] == [1, 2]
            assert [s["scene_number"] for s in resumed["storyboard_plan"]["scenes"]] == [1, 2]
            assert_images_served(client, resumed, alice)
            assert_images_served(client, queued, alice)
            health = client.get("/health", headers=alice).json()  # the queue: signed-in callers only
            assert health["queue_depth"] == 0 and health["status"] in ("healthy", "degraded")
    finally:
        server.stop()
