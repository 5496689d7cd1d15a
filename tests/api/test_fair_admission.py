"""Fair admission: the per-user round-robin queue, the per-user cap on queued plus running
jobs (a 429 that names the limit and says when to retry), and the cap across a real server
process while another user's submit is accepted."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from imageforge.api.main import create_app
from imageforge.api.models.generation import TERMINAL_STATUSES as TERMINAL
from imageforge.api.services.fair_queue import FairQueue
from tests.api.server import SLOW_GENERATOR_ENV, Server, wait_until
from tests.api.support import FakePipeline, add_user, make_settings, wait_for_status


# The queue ---------------------------------------------------------------------------------
def test_pop_rotates_across_users_and_keeps_each_users_order() -> None:
    queue = FairQueue()
    for index in range(1, 5):
        queue.push("alice", f"a{index}")
    queue.push("bob", "b1")
    queue.push("bob", "b2")
    queue.push("carol", "c1")
    assert len(queue) == 7 and "b2" in queue and "zz" not in queue
    assert list(queue) == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]
    assert [queue.pop() for _ in range(7)] == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]
    assert queue.pop() is None and len(queue) == 0 and queue.users() == 0


def test_a_user_who_joins_a_flood_waits_one_turn() -> None:
    queue = FairQueue()
    for index in range(1, 11):
        queue.push("flood", f"f{index}")
    assert queue.pop() == "f1"
    queue.push("late", "l1")
    # The flooding user had the current turn; the newcomer is next after it.
    assert [queue.pop(), queue.pop()] == ["f2", "l1"]
    assert queue.waiting("flood") == 8 and queue.waiting("late") == 0


def test_remove_takes_a_waiting_job_out() -> None:
    queue = FairQueue()
    queue.push(1, "a")
    queue.push(1, "b")
    queue.push(2, "c")
    assert queue.remove("b") is True
    assert queue.remove("b") is False and queue.remove("never") is False
    assert queue.remove("c") is True and queue.users() == 1
    assert [queue.pop(), queue.pop()] == ["a", None]


def test_a_job_is_queued_once() -> None:
    queue = FairQueue()
    queue.push("alice", "a")
    with pytest.raises(ValueError, match="already queued"):
        queue.push("bob", "a")


# The per-user cap (TestClient) -------------------------------------------------------------
def test_the_per_user_cap_refuses_with_the_limit_named_and_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_jobs_per_user=2, workers=1, retry_after_s=7)
    pipeline = FakePipeline(settings.trace_root)
    pipeline.hold.clear()  # every job stays running or queued until released
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        alice = add_user(client, "alice@example.com")
        bob = add_user(client, "bob@example.com")
        first = [client.post("/api/generate", json={"prompt": f"a cat {i}"}, headers=alice) for i in range(2)]
        assert [r.status_code for r in first] == [202, 202]
        refused = client.post("/api/generate", json={"prompt": "one too many"}, headers=alice)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "7"
        assert "max_jobs_per_user = 2" in refused.json()["detail"]
        # Nothing stored for the refused request; the other user still gets in.
        assert client.get("/api/generations", headers=alice).json()["count"] == 2
        assert client.post("/api/generate", json={"prompt": "bob's turn"}, headers=bob).status_code == 202
        # A batch: items past the cap are refused one by one, naming the limit.
        batch = client.post(
            "/api/storyboards/batch", json={"items": [{"prompt": "x"}, {"prompt": "y"}]}, headers=bob
        ).json()
        assert [item["accepted"] for item in batch["results"]] == [True, False]
        assert "max_jobs_per_user" in batch["results"][1]["reason"]
        # /v1/images answers in OpenAI's shape with its own code.
        images = client.post("/v1/images/generations", json={"prompt": "a dog"}, headers=alice)
        assert images.status_code == 429 and images.headers["Retry-After"] == "7"
        assert images.json()["error"]["code"] == "user_jobs_limit"
        # A finished job frees its slot.
        pipeline.hold.set()
        for response in first:
            wait_for_status(client, response.json()["generation_id"], alice, {"completed"})
        assert client.post("/api/generate", json={"prompt": "room again"}, headers=alice).status_code == 202


def test_a_cancelled_job_frees_its_slot(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_jobs_per_user=1, workers=1)
    pipeline = FakePipeline(settings.trace_root)
    pipeline.hold.clear()
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        alice = add_user(client, "alice@example.com")
        first = client.post("/api/generate", json={"prompt": "a cat"}, headers=alice).json()["generation_id"]
        assert client.post("/api/generate", json={"prompt": "again"}, headers=alice).status_code == 429
        assert client.post(f"/api/generations/{first}/cancel", headers=alice).status_code in (200, 202)
        pipeline.hold.set()
        wait_for_status(client, first, alice, {"cancelled", "completed"})
        assert client.post("/api/generate", json={"prompt": "again"}, headers=alice).status_code == 202


def test_the_embedded_runner_starts_waiting_jobs_round_robin(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workers=1)
    pipeline = FakePipeline(settings.trace_root)
    pipeline.hold.clear()
    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        alice = add_user(client, "alice@example.com")
        bob = add_user(client, "bob@example.com")
        mine = [
            client.post("/api/generate", json={"prompt": f"a cat {i}"}, headers=alice).json()["generation_id"]
            for i in range(3)
        ]
        theirs = client.post("/api/generate", json={"prompt": "a dog"}, headers=bob).json()["generation_id"]
        pipeline.hold.set()
        for generation_id, headers in [*((g, alice) for g in mine), (theirs, bob)]:
            wait_for_status(client, generation_id, headers, {"completed"})
    # Bob came last but starts before Alice's third job (a global FIFO would run it last).
    order = pipeline.started
    assert sorted(order) == sorted([*mine, theirs])
    assert order.index(theirs) < order.index(mine[2]), order


# The per-user cap across a real server process ---------------------------------------------
@pytest.mark.integration
def test_a_user_over_the_cap_gets_429_while_another_user_is_accepted(tmp_path: Path) -> None:
    server = Server(tmp_path).start(
        **SLOW_GENERATOR_ENV,
        SLOW_GENERATOR_DELAY_S="0.5",
        IMAGEFORGE_MAX_JOBS_PER_USER="2",
        IMAGEFORGE_WORKERS="1",
        IMAGEFORGE_RETRY_AFTER_S="11",
    )
    try:
        alice = server.add_user("alice@example.com")
        bob = server.add_user("bob@example.com")
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            body = {"prompt": "a lighthouse at dusk", "num_scenes": 1}
            accepted = [http.post("/api/generate", json=body, headers=alice) for _ in range(2)]
            assert [r.status_code for r in accepted] == [202, 202], [r.text for r in accepted]
            refused = http.post("/api/generate", json=body, headers=alice)
            assert refused.status_code == 429, refused.text
            assert refused.headers["Retry-After"] == "11"
            assert "max_jobs_per_user" in refused.json()["detail"]
            other = http.post("/api/generate", json=body, headers=bob)
            assert other.status_code == 202, other.text
            # Bob's job runs and finishes although Alice filled her share first.
            bob_id = other.json()["generation_id"]
            url = f"/api/generations/{bob_id}"
            wait_until(http, url, bob, lambda document: document["status"] == "completed", timeout_s=120)
            # Cancelling frees Alice's share at once.
            ids = [response.json()["generation_id"] for response in accepted]
            for generation_id in ids:
                assert http.post(f"/api/generations/{generation_id}/cancel", headers=alice).is_success
            for generation_id in ids:
                url = f"/api/generations/{generation_id}"
                wait_until(http, url, alice, lambda document: document["status"] in TERMINAL, timeout_s=60)
            assert http.post("/api/generate", json=body, headers=alice).status_code == 202
    finally:
        server.stop()
