"""Distributed execution end to end: a real redis-server, PostgreSQL, one API process and
Celery workers (``imageforge worker``) as separate processes, with the slow generator.

Leases are short here (2 s, renewed every 0.4 s) so that a killed worker's job is re-queued
within seconds; nothing else differs from a deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.api.server import SLOW_GENERATOR_ENV, Server, wait_until
from tests.api.test_api_server import FINAL, _scene_files, submit
from tests.redis_server import Worker, fresh_postgres_database, redis_server, skip_reason

REASON = skip_reason()
pytestmark = [pytest.mark.integration, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

#: Seconds each generator call sleeps: long enough to kill or cancel a job mid-scene.
DELAY_S = 0.5
FAST_LEASES = {"IMAGEFORGE_LEASE_TTL_S": "2", "IMAGEFORGE_HEARTBEAT_INTERVAL_S": "0.4"}
PROMPT = "Artisan coffee that starts your morning right"


@dataclass
class Cluster:
    """Redis, a fresh PostgreSQL database and one API process for the module; workers per test."""

    server: Server
    broker_url: str
    workers: list[Worker] = field(default_factory=list)

    def worker(self, name: str) -> Worker:
        """The running worker called ``name`` (two jobs at once), started when there is none:
        tests share workers, as a worker start costs seconds."""
        for worker in self.workers:
            if worker.name == name and worker.process is not None and worker.process.poll() is None:
                return worker
        worker = Worker(self.server, name, 2, {"SLOW_GENERATOR_DELAY_S": str(DELAY_S)}).start()
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        """Kill this test's workers and forget their presence (as their heartbeat's expiry would)."""
        import redis

        client = redis.Redis.from_url(self.broker_url)
        for worker in self.workers:
            worker.stop()
            client.delete(f"imageforge:worker:{worker.name}")
        client.close()
        self.workers.clear()

    def logs(self) -> str:
        return self.server.log() + "".join(f"\n--- {w.name}\n{w.log()}" for w in self.workers)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("distributed")
    with redis_server(root) as broker_url, fresh_postgres_database() as database_url:
        server = Server(
            root,
            {
                "IMAGEFORGE_DATABASE_URL": database_url,
                "IMAGEFORGE_BROKER_URL": broker_url,
                **FAST_LEASES,
                **SLOW_GENERATOR_ENV,
            },
        )
        cluster = Cluster(server, broker_url)
        try:
            server.start()
            yield cluster
        finally:
            cluster.stop_workers()
            server.stop()


@pytest.fixture
def cluster(shared: Cluster) -> Iterator[Cluster]:
    yield shared
    print(shared.logs())  # shown when the test fails


class EventLog:
    """Every SSE event of one generation, read in a thread from the moment it is created."""

    def __init__(self, base_url: str, generation_id: str, headers: dict[str, str]) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._thread = threading.Thread(target=self._read, args=(base_url, generation_id, headers), daemon=True)
        self._thread.start()

    def _read(self, base_url: str, generation_id: str, headers: dict[str, str]) -> None:
        kind = "message"
        with (
            httpx.Client(base_url=base_url, timeout=httpx.Timeout(120.0)) as client,
            client.stream("GET", f"/api/generations/{generation_id}/events", headers=headers) as response,
        ):
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    self.events.append((time.monotonic(), kind, json.loads(line.split(":", 1)[1].strip())))

    def join(self, timeout_s: float = 60.0) -> list[tuple[float, str, dict[str, Any]]]:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the event stream did not end"
        return self.events


def _status(client: httpx.Client, generation_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"/api/generations/{generation_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_queue_without_workers_then_drain_and_cancel_on_a_worker(cluster: Cluster) -> None:
    user = cluster.server.add_user(f"cancel-{uuid.uuid4().hex[:6]}@example.com")
    with httpx.Client(base_url=cluster.server.base_url, timeout=30.0) as client:
        waiting = [submit(client, user, f"{PROMPT} {i}") for i in range(2)]
        time.sleep(1.0)  # nobody runs them: they stay queued, and the API keeps answering
        for job in waiting:
            assert _status(client, job, user)["status"] == "queued"
        health = client.get("/health", headers=user)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert any("no live worker" in issue for issue in health.json()["issues"])
        cancelled = client.post(f"/api/generations/{waiting[1]}/cancel", headers=user).json()
        assert cancelled["status"] == "cancelled"

        worker = cluster.worker("alpha")
        done = wait_until(client, f"/api/generations/{waiting[0]}", user, lambda d: d["status"] in FINAL)
        assert done["status"] == "completed", cluster.logs()
        assert _status(client, waiting[1], user)["status"] == "cancelled"  # its message was skipped

        running = submit(client, user, PROMPT, num_scenes=3)
        wait_until(client, f"/api/generations/{running}", user, lambda d: d["status"] == "running")
        answer = client.post(f"/api/generations/{running}/cancel", headers=user).json()
        assert answer["cancel_requested"] is True
        final = wait_until(client, f"/api/generations/{running}", user, lambda d: d["status"] in FINAL, timeout_s=30)
        assert final["status"] == "cancelled"
        assert any(s["status"] == "pending" for s in final["storyboard_plan"]["scenes"])  # stopped, not finished
        assert worker.process is not None and worker.process.poll() is None  # the worker lives on
        assert os.path.isdir(cluster.server.root / "traces" / running)


def test_six_storyboards_of_two_users_complete_on_two_workers(cluster: Cluster) -> None:
    workers = [cluster.worker("alpha"), cluster.worker("beta")]
    for worker in workers:
        worker.wait_ready(cluster.broker_url)
    alice = cluster.server.add_user(f"alice-{uuid.uuid4().hex[:6]}@example.com")
    bob = cluster.server.add_user(f"bob-{uuid.uuid4().hex[:6]}@example.com")
    with httpx.Client(base_url=cluster.server.base_url, timeout=30.0) as client:
        health = wait_until(client, "/health", alice, lambda h: len(h.get("worker_processes", [])) == 2, timeout_s=10)
        assert {w["name"] for w in health["worker_processes"]} == {"alpha", "beta"}
        assert {w["device"] for w in health["worker_processes"]} == {"cpu"}
        assert health["workers"] == 4 and health["status"] == "healthy"
        jobs = [(submit(client, user, f"{PROMPT} #{i}"), user) for i in range(3) for user in (alice, bob)]
        streams = [EventLog(cluster.server.base_url, job, user) for job, user in jobs]
        ran_on: set[str] = set()
        for (job, user), stream in zip(jobs, streams, strict=True):
            events = stream.join()
            assert events[-1][1] == "status" and events[-1][2]["status"] == "completed", events[-1]
            kinds = [kind for _, kind, _ in events]
            assert "scene_done" in kinds  # progress crossed from a worker over Redis
            ran_on |= {e["worker"] for _, _, e in events if "worker" in e}
            document = _status(client, job, user)
            assert document["status"] == "completed"
            assert all(
                s["status"] in ("passed", "accepted_with_warning") for s in document["storyboard_plan"]["scenes"]
            )
        assert ran_on == {"alpha", "beta"}
        assert client.get(f"/api/generations/{jobs[0][0]}", headers=bob).status_code == 404  # alice's


def test_sigkill_a_worker_mid_scene_loses_nothing(cluster: Cluster) -> None:
    import redis

    first, second = cluster.worker("alpha"), cluster.worker("beta")
    for worker in (first, second):
        worker.wait_ready(cluster.broker_url)
    user = cluster.server.add_user(f"kill-{uuid.uuid4().hex[:6]}@example.com")
    broker = redis.Redis.from_url(cluster.broker_url, decode_responses=True)
    trace_root = cluster.server.root / "traces"
    with httpx.Client(base_url=cluster.server.base_url, timeout=30.0) as client:
        job = submit(client, user, PROMPT, num_scenes=3)
        stream = EventLog(cluster.server.base_url, job, user)
        # Wait until scene 1 is stored and scene 2 is being generated, then kill its worker.
        wait_until(
            client,
            f"/api/generations/{job}",
            user,
            lambda d: [s["status"] for s in d["storyboard_plan"]["scenes"]][:2] in (["passed", "running"],),
        )
        holder = str(broker.get(f"imageforge:lease:{job}")).split(":", 1)[0]
        victim, survivor = (first, second) if holder == first.name else (second, first)
        before = _scene_files(trace_root / job, 1)
        assert before
        victim.kill()
        killed_at = time.monotonic()
        events = stream.join(timeout_s=90)
        assert events[-1][2].get("status") == "completed", events[-1]
        assert _scene_files(trace_root / job, 1) == before  # same inode, mtime and bytes: not redone
        done = [e["scene"] for _, kind, e in events if kind == "scene_done"]
        assert sorted(done) == [1, 2, 3]  # each scene finished once, by one worker
        after = [(kind, e) for t, kind, e in events if t > killed_at and "worker" in e]
        assert after and {e["worker"] for _, e in after} == {survivor.name}
        assert not [e for kind, e in after if kind == "variations_generated" and e.get("scene") == 1]
        requeued = [e for t, kind, e in events if t > killed_at and kind == "status" and e["status"] == "queued"]
        assert requeued and requeued[0]["current_step"] == "re-queued: its worker stopped"  # by a reaper
        document = _status(client, job, user)
        assert document["status"] == "completed"
        assert broker.get(f"imageforge:losses:{job}") == "1"

        # A job that has already cost two workers is failed when it costs a third, not re-queued.
        doomed = submit(client, user, PROMPT, num_scenes=3)
        broker.set(f"imageforge:losses:{doomed}", 2)
        wait_until(client, f"/api/generations/{doomed}", user, lambda d: d["status"] == "running" and d["progress"] > 5)
        survivor.kill()  # no worker is left: the API's reaper notices the loss
        failed = wait_until(client, f"/api/generations/{doomed}", user, lambda d: d["status"] in FINAL, timeout_s=60)
        assert failed["status"] == "failed"
        assert "stopped (killed or crashed) 3 times" in failed["error"]
    broker.close()


# Revocation across processes ------------------------------------------------------------------
def _imageforge(cluster: Cluster, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """An ``imageforge`` command in its own process, with the API's environment changed by
    ``env`` (None removes a variable)."""
    environment = cluster.server.environment()
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, "-c", "from imageforge.api.cli import app; app()", *args],
        env=environment,
        cwd=cluster.server.root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_token_revoked_by_a_command_is_refused_at_the_next_request(cluster: Cluster) -> None:
    """The API keeps its callers in memory (no query per request); ``imageforge users`` still
    revokes at once, and refuses to change a user where the API would not hear of it."""
    email = f"revoked-{uuid.uuid4().hex[:6]}@example.com"
    ann = cluster.server.add_user(email)
    admin = cluster.server.add_user(f"admin-{uuid.uuid4().hex[:6]}@example.com", admin=True)
    missing = f"/api/generations/{uuid.uuid4().hex}"  # the status route, the one clients poll
    with httpx.Client(base_url=cluster.server.base_url, timeout=30.0) as client:
        for _ in range(3):
            assert client.get("/api/users/me", headers=ann).status_code == 200
            assert client.get(missing, headers=ann).status_code == 404
        cache = client.get("/health", headers=admin).json()["user_cache"]
        assert cache["live"] and cache["entries"] >= 1, cache

        unheard = _imageforge(cluster, "users", "deactivate", "--email", email, IMAGEFORGE_BROKER_URL=None)
        assert unheard.returncode == 2, unheard.stderr
        assert "IMAGEFORGE_BROKER_URL" in unheard.stderr and "Nothing was changed" in unheard.stderr
        elsewhere = cluster.broker_url.rsplit("/", 1)[0] + "/7"  # the same server, another database
        wrong = _imageforge(cluster, "users", "deactivate", "--email", email, IMAGEFORGE_BROKER_URL=elsewhere)
        assert wrong.returncode == 2 and "No API process listens" in wrong.stderr, wrong.stderr
        assert client.get("/api/users/me", headers=ann).status_code == 200

        done = _imageforge(cluster, "users", "deactivate", "--email", email)
        assert done.returncode == 0, done.stderr
        for url in ("/api/users/me", missing):
            refused = client.get(url, headers=ann)
            assert refused.status_code == 401 and "inactive" in refused.json()["detail"], refused.text

        bea_email = f"password-{uuid.uuid4().hex[:6]}@example.com"
        bea = cluster.server.add_user(bea_email)
        assert client.get("/api/users/me", headers=bea).status_code == 200
        changed = _imageforge(cluster, "users", "password", "--email", bea_email, "--password", "a-new-secret-9")
        assert changed.returncode == 0, changed.stderr
        stale = client.get("/api/users/me", headers=bea)
        assert stale.status_code == 401 and "revoked" in stale.json()["detail"], stale.text
        login = client.post("/api/login/access-token", data={"username": bea_email, "password": "a-new-secret-9"})
        fresh = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert [client.get("/api/users/me", headers=fresh).status_code for _ in range(2)] == [200, 200]
