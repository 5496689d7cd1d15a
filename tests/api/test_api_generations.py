"""Submitting, following, listing, cancelling and isolating generations (TestClient tier)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from imageforge.api.main import create_app
from imageforge.api.models.generation import Generation
from tests.api.support import FakePipeline, add_user, make_settings, wait_for_status

SMALL = {"num_variations": 2, "max_enhancement_iterations": 1}


def stored_generations(client: TestClient) -> int:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        return session.exec(select(func.count()).select_from(Generation)).one()


def submit(client: TestClient, headers: dict[str, str], **body: object) -> dict:
    payload = {
        "prompt": "Artisan coffee that starts your morning right",
        "num_scenes": 2,
        "settings": SMALL,
        **body,
    }
    response = client.post("/api/generate", json=payload, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def test_generate_returns_at_once_and_completes_with_every_image_served(
    client: TestClient, alice: dict[str, str]
) -> None:
    accepted = submit(client, alice)
    generation_id = accepted["generation_id"]
    assert accepted["status_url"].endswith(f"/api/generations/{generation_id}")
    assert accepted["events_url"].endswith(f"/api/generations/{generation_id}/events")

    document = wait_for_status(client, generation_id, alice, {"completed"})
    assert document["progress"] == 100
    plan = document["storyboard_plan"]
    assert plan["advanced_image_settings"] == {
        "quality_threshold": 30.0,
        "num_variations": 2,
        "max_enhancement_iterations": 1,
    }
    assert [s["scene_number"] for s in plan["scenes"]] == [1, 2]
    for scene in plan["scenes"]:
        assert scene["status"] == "passed"
        assert scene["prompt"].startswith(f"scene {scene['scene_number']}")
        assert scene["enhanced_prompt"] == f"enhanced scene {scene['scene_number']}"
        assert scene["quality_score"] == 57.0
        assert scene["component_scores"] == {"pickscore": 62.0, "clip": 50.0}
        [attempt] = scene["attempts"]
        assert attempt["passed"] and len(attempt["variations"]) == 2
        urls = [scene["reference_image_url"], *(v["image_url"] for v in attempt["variations"])]
        for url in urls:
            image = client.get(url, headers=alice)
            assert image.status_code == 200, url
            assert image.content.startswith(b"\x89PNG")


def test_status_document_lists_planned_scenes_while_running(
    client: TestClient, pipeline: FakePipeline, alice: dict[str, str]
) -> None:
    pipeline.hold.clear()
    generation_id = submit(client, alice)["generation_id"]
    document = wait_for_status(client, generation_id, alice, {"running"})
    deadline = time.monotonic() + 20
    while not document["storyboard_plan"]["scenes"]:
        assert time.monotonic() < deadline, f"the planned scenes never reached the status document: {document}"
        time.sleep(0.02)
        document = client.get(f"/api/generations/{generation_id}", headers=alice).json()
    assert [s["status"] for s in document["storyboard_plan"]["scenes"]] == ["pending", "pending"]
    assert document["current_step"] == "enhancing prompts"
    pipeline.hold.set()
    assert wait_for_status(client, generation_id, alice, {"completed"})["progress"] == 100


def test_validation_errors_name_the_field_and_store_nothing(client: TestClient, alice: dict[str, str]) -> None:
    cases = [
        ({"num_scenes": 2}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x", "settings": {"num_variations": 0}}, "num_variations"),
        ({"prompt": "x", "settings": {"quality_threshold": 101}}, "quality_threshold"),
        ({"prompt": "x", "settings": {"backends": {"llm": "gpt-9"}}}, "llm"),
        (
            {"prompt": "x", "settings": {"backends": {"llm_base_url": "http://evil"}}},
            "llm_base_url",
        ),
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x", "target_duration": -5}, "target_duration"),
        ({"prompt": "x", "scenes": ["a", ""]}, "scenes"),
        ({"prompt": "x", "scenes": ["a", "b"], "num_scenes": 3}, "num_scenes"),
    ]
    for body, field in cases:
        response = client.post("/api/generate", json=body, headers=alice)
        assert response.status_code == 422, (body, response.text)
        assert field in json.dumps(response.json()["detail"]), (body, response.json())
    assert (
        client.post(
            "/api/generate",
            content=b"{not json",
            headers={**alice, "content-type": "application/json"},
        ).status_code
        == 422
    )
    assert stored_generations(client) == 0


def test_unknown_and_malformed_ids_are_404_or_422(client: TestClient, alice: dict[str, str]) -> None:
    assert client.get("/api/generations/0123456789abcdef", headers=alice).status_code == 404
    assert client.post("/api/generations/nope/cancel", headers=alice).status_code == 404
    assert client.get("/api/generations/nope/trace", headers=alice).status_code == 404
    assert client.get("/api/generations/bad%20id", headers=alice).status_code == 422


def test_another_users_generation_is_404_everywhere(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    generation_id = submit(client, alice)["generation_id"]
    document = wait_for_status(client, generation_id, alice, {"completed"})
    image_url = document["storyboard_plan"]["scenes"][0]["reference_image_url"]
    base = f"/api/generations/{generation_id}"
    for method, url in [
        ("GET", base),
        ("GET", f"{base}/trace"),
        ("GET", f"{base}/trace/files/summary.json"),
        ("GET", image_url),
        ("GET", f"{base}/events"),
        ("POST", f"{base}/cancel"),
    ]:
        assert client.request(method, url, headers=bob).status_code == 404, url
        assert client.request(method, url, headers=alice).status_code == 200, url
    assert client.get("/api/generations", headers=bob).json() == {"data": [], "count": 0}


def test_history_is_paginated_and_filtered(
    client: TestClient, pipeline: FakePipeline, alice: dict[str, str], bob: dict[str, str]
) -> None:
    ids = [submit(client, alice)["generation_id"] for _ in range(3)]
    submit(client, bob)
    for generation_id in ids:
        wait_for_status(client, generation_id, alice, {"completed"})
    page = client.get("/api/generations", params={"limit": 2}, headers=alice).json()
    assert page["count"] == 3 and len(page["data"]) == 2
    rest = client.get("/api/generations", params={"limit": 2, "skip": 2}, headers=alice).json()
    assert {g["id"] for g in page["data"] + rest["data"]} == set(ids)
    assert client.get("/api/generations", params={"status": "completed"}, headers=alice).json()["count"] == 3
    assert client.get("/api/generations", params={"status": "queued"}, headers=alice).json()["count"] == 0
    assert client.get("/api/generations", params={"status": "bogus"}, headers=alice).status_code == 422
    assert client.get("/api/generations", params={"limit": 0}, headers=alice).status_code == 422


def test_cancel_queued_and_running_jobs_is_idempotent_and_spares_the_others(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workers=1, queue_size=5)
    pipeline = FakePipeline(settings.trace_root)
    pipeline.hold.clear()
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        alice = add_user(client, "alice@example.com")
        running = submit(client, alice)["generation_id"]
        wait_for_status(client, running, alice, {"running"})
        queued = submit(client, alice)["generation_id"]
        survivor = submit(client, alice)["generation_id"]

        first = client.post(f"/api/generations/{queued}/cancel", headers=alice)
        assert first.status_code == 200 and first.json()["status"] == "cancelled"
        again = client.post(f"/api/generations/{queued}/cancel", headers=alice)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"

        stopping = client.post(f"/api/generations/{running}/cancel", headers=alice).json()
        assert stopping["cancel_requested"] is True
        assert client.post(f"/api/generations/{running}/cancel", headers=alice).json()["cancel_requested"] is True
        pipeline.hold.set()
        assert wait_for_status(client, running, alice, {"cancelled", "completed", "failed"})["status"] == "cancelled"
        assert wait_for_status(client, survivor, alice, {"cancelled", "completed", "failed"})["status"] == "completed"
        assert [call[0] for call in pipeline.calls] == [
            running,
            survivor,
        ]  # the cancelled queued job never ran


def test_full_queue_answers_429_with_retry_after_and_stores_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workers=1, queue_size=1, retry_after_s=7)
    pipeline = FakePipeline(settings.trace_root)
    pipeline.hold.clear()
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        alice = add_user(client, "alice@example.com")
        running = submit(client, alice)["generation_id"]
        wait_for_status(client, running, alice, {"running"})
        submit(client, alice)  # waits in the queue
        refused = client.post("/api/generate", json={"prompt": "one more", "settings": SMALL}, headers=alice)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "7"
        assert stored_generations(client) == 2
        pipeline.hold.set()


def test_batch_reports_invalid_items_by_index_and_accepts_the_rest(client: TestClient, alice: dict[str, str]) -> None:
    items = [
        {"prompt": "first", "num_scenes": 1, "settings": SMALL},
        {"prompt": "", "num_scenes": 1},
        {"prompt": "third", "scenes": ["a bakery at dawn", "a cup of coffee"], "settings": SMALL},
        {"prompt": "fourth", "settings": {"num_variations": 99}},
        "not an object",
    ]
    response = client.post("/api/storyboards/batch", json={"items": items}, headers=alice)
    if response.status_code == 422:  # a non-object item is refused by the schema itself
        assert "items" in json.dumps(response.json())
        items = items[:-1]
        response = client.post("/api/storyboards/batch", json={"items": items}, headers=alice)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    by_index = {r["index"]: r for r in body["results"]}
    assert by_index[0]["accepted"] and by_index[2]["accepted"]
    assert not by_index[1]["accepted"] and "prompt" in by_index[1]["reason"]
    assert not by_index[3]["accepted"] and "num_variations" in by_index[3]["reason"]
    for index in (0, 2):
        generation_id = by_index[index]["generation_id"]
        document = wait_for_status(client, generation_id, alice, {"completed"})
        assert len(document["storyboard_plan"]["scenes"]) == (1 if index == 0 else 2)
    assert stored_generations(client) == 2


def test_batch_size_is_limited(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_batch_items=2)
    with TestClient(create_app(settings, pipeline=FakePipeline(settings.trace_root))) as client:
        alice = add_user(client, "alice@example.com")
        response = client.post("/api/storyboards/batch", json={"items": [{"prompt": "x"}] * 3}, headers=alice)
        assert response.status_code == 422 and "items" in json.dumps(response.json())
        assert client.post("/api/storyboards/batch", json={"items": []}, headers=alice).status_code == 422
        assert stored_generations(client) == 0


def test_sse_and_websocket_of_a_finished_job_send_the_state_then_end(client: TestClient, alice: dict[str, str]) -> None:
    generation_id = submit(client, alice)["generation_id"]
    wait_for_status(client, generation_id, alice, {"completed"})
    with client.stream("GET", f"/api/generations/{generation_id}/events", headers=alice) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert "event: state" in text
    data = json.loads(next(line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")))
    assert data["status"] == "completed"

    token = alice["Authorization"].split()[1]
    with client.websocket_connect(f"/api/generations/{generation_id}/ws?token={token}") as ws:
        message = ws.receive_json()
    assert message["event"] == "state" and message["data"]["status"] == "completed"


def test_websocket_refuses_a_bad_token_and_another_users_job(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    from starlette.websockets import WebSocketDisconnect

    generation_id = submit(client, alice)["generation_id"]
    for url in (
        f"/api/generations/{generation_id}/ws?token=garbage",
        f"/api/generations/{generation_id}/ws?token={bob['Authorization'].split()[1]}",
        f"/api/generations/{generation_id}/ws",
    ):
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(url) as ws:
            ws.receive_json()
        assert refused.value.code == 1008
    with client.websocket_connect(f"/api/generations/{generation_id}/ws", headers=alice) as ws:
        assert ws.receive_json()["event"] == "state"


def test_restart_requeues_unfinished_jobs_and_resumes_the_running_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workers=1, queue_size=5)
    first = FakePipeline(settings.trace_root)
    first.hold.clear()
    with TestClient(create_app(settings, pipeline=first)) as client:
        alice = add_user(client, "alice@example.com")
        running = submit(client, alice)["generation_id"]
        wait_for_status(client, running, alice, {"running"})
        queued = submit(client, alice)["generation_id"]
    # The app stopped with one job running and one queued: both are still in the database.
    second = FakePipeline(settings.trace_root)
    with TestClient(create_app(settings, pipeline=second)) as client:
        for generation_id in (running, queued):
            assert wait_for_status(client, generation_id, alice, {"completed", "failed"})["status"] == "completed"
    assert second.calls == [(running, True), (queued, False)]


def test_sse_accepts_the_token_as_a_query_parameter(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    generation_id = submit(client, alice)["generation_id"]
    wait_for_status(client, generation_id, alice, {"completed"})
    url = f"/api/generations/{generation_id}/events"
    assert client.get(url).status_code == 401
    assert client.get(url, params={"token": bob["Authorization"].split()[1]}).status_code == 404
    with client.stream("GET", url, params={"token": alice["Authorization"].split()[1]}) as response:
        assert response.status_code == 200
        assert "event: state" in "".join(response.iter_text())
