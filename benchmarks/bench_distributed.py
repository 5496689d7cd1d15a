"""Distributed execution benchmark (issue 9), run by hand:
`python benchmarks/bench_distributed.py [throughput|streams|all]`.

Needs ``redis-server`` and a PostgreSQL server (IMAGEFORGE_TEST_POSTGRES_URL, as the tests);
each run uses a fresh database and its own Redis on a free port. The API is one uvicorn
process with IMAGEFORGE_BROKER_URL set; workers are ``imageforge worker`` processes. The
backends are offline and the generator sleeps (tests/slow_generator.py), so the machine's
two cores are not what limits throughput.

- throughput: the same batch of storyboards with 1 worker, then with 2 (each worker runs
  ``--concurrency`` jobs at once); reported: wall time and the speed-up (target >= 1.8x).
- streams: 200 event streams (SSE) held open while 20 clients submit storyboards and poll
  their status documents; the streams follow long storyboards (moving to the next one when
  theirs ends, so all 200 stay open for the whole load). Probes time /health every 0.05 s
  and a login every 2 s. Target: status and /health p99 < 50 ms, every login answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from imageforge.api.core.metrics import percentile as service_percentile
from tests.api.server import SLOW_GENERATOR_ENV, Server
from tests.redis_server import Worker, fresh_postgres_database, redis_server, skip_reason

SETTINGS = {"num_variations": 2, "max_enhancement_iterations": 1, "max_retries": 0, "resolution": 128}
#: The storyboards the event streams follow: 12 scenes at 512 px, ~10 s a scene with
#: --long-delay 40 (the generator's delay grows with the area), so they outlast the load.
LONG_SETTINGS = {**SETTINGS, "resolution": 512}
FINAL = {"completed", "failed", "cancelled"}
PASSWORD = "password123"


def percentile(values: list[float], q: int) -> float:
    value = service_percentile(values, q)
    return float("nan") if value is None else value


#: How the `hold` child process gets the stream owner's token (not on its command line).
HOLD_TOKEN_ENV = "BENCH_STREAM_TOKEN"

#: Set by --workers-on: the command prefix that keeps the workers off the API's core.
WORKER_PREFIX: list[str] = []


def start_workers(
    server: Server, broker_url: str, count: int, concurrency: int, delay_s: float, per_megapixel_s: float = 0.0
) -> list[Worker]:
    environment = {"SLOW_GENERATOR_DELAY_S": str(delay_s), "SLOW_GENERATOR_DELAY_PER_MEGAPIXEL_S": str(per_megapixel_s)}
    workers = [
        Worker(
            server,
            f"bench-{uuid.uuid4().hex[:6]}",
            concurrency,
            environment,
            prefix=WORKER_PREFIX,
        ).start()
        for _ in range(count)
    ]
    for worker in workers:
        worker.wait_ready(broker_url)
    return workers


async def submit(
    client: httpx.AsyncClient, headers: dict[str, str], prompt: str, scenes: int, settings: dict[str, Any] = SETTINGS
) -> str:
    body = {"prompt": prompt, "num_scenes": scenes, "settings": settings}
    response = await client.post("/api/generate", json=body, headers=headers)
    response.raise_for_status()
    return str(response.json()["generation_id"])


async def wait_all(client: httpx.AsyncClient, headers: dict[str, str], jobs: list[str]) -> dict[str, str]:
    final: dict[str, str] = {}
    while len(final) < len(jobs):
        for job in jobs:
            if job not in final:
                document = (await client.get(f"/api/generations/{job}", headers=headers)).json()
                if document["status"] in FINAL:
                    final[job] = document["status"]
        await asyncio.sleep(0.2)
    return final


# Throughput ----------------------------------------------------------------------------------
async def throughput(server: Server, broker_url: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    headers = server.add_user(f"tp-{uuid.uuid4().hex[:6]}@example.com", PASSWORD)
    walls: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as client:
        for count in (1, 2):
            workers = start_workers(server, broker_url, count, args.concurrency, args.delay)
            try:
                started = time.perf_counter()
                jobs = [
                    await submit(client, headers, f"Throughput {count}-{i}: artisan coffee at dawn", 2)
                    for i in range(args.storyboards)
                ]
                final = await wait_all(client, headers, jobs)
                walls[count] = time.perf_counter() - started
                assert set(final.values()) == {"completed"}, final
            finally:
                for worker in workers:
                    worker.stop()
    return [
        ("storyboards per run", f"{args.storyboards} (2 scenes; generator sleeps {args.delay:g} s per call)"),
        ("worker concurrency", str(args.concurrency)),
        ("wall time, 1 worker", f"{walls[1]:.1f} s"),
        ("wall time, 2 workers", f"{walls[2]:.1f} s"),
        ("speed-up", f"{walls[1] / walls[2]:.2f}x (target >= 1.8x)"),
    ]


# Streams -------------------------------------------------------------------------------------
async def hold_stream(
    base_url: str, job: str, headers: dict[str, str], open_now: list[int], stop: asyncio.Event
) -> None:
    """One subscriber (a browser tab on the trace viewer) following a long job's events."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(300.0)) as client,
        client.stream("GET", f"/api/generations/{job}/events", headers=headers) as response,
    ):
        assert response.status_code == 200
        counted = False
        try:
            async for line in response.aiter_lines():
                if not counted and line.startswith("event:"):
                    open_now[0] += 1
                    counted = True
                if stop.is_set():
                    break
        finally:
            if counted:
                open_now[0] -= 1


async def hold_streams(args: argparse.Namespace) -> int:
    """The ``hold`` mode: the event streams in a process of their own, printing how many are
    open every 0.1 s until stdin closes. Held in the measuring process, each event's delivery
    to 50 streams delayed the pollers' own timings (its loop, not the server's)."""
    headers = {"Authorization": f"Bearer {os.environ[HOLD_TOKEN_ENV]}"}
    jobs = args.jobs.split(",")
    open_now = [0]
    stop = asyncio.Event()
    holders = [
        asyncio.create_task(hold_stream(args.base_url, jobs[i % len(jobs)], headers, open_now, stop))
        for i in range(args.streams)
    ]
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    while not stdin_closed.done():
        print(f"open {open_now[0]}", flush=True)
        await asyncio.wait([stdin_closed], timeout=0.1)
    stop.set()
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    return 0


class StreamHolders:
    """``hold_streams`` in a child process; ``open`` follows its reports."""

    def __init__(self, base_url: str, jobs: list[str], token: str, count: int) -> None:
        self.command = [sys.executable, __file__, "hold", "--base-url", base_url, "--jobs", ",".join(jobs)]
        self.command += ["--streams", str(count)]
        self.environment = {**os.environ, HOLD_TOKEN_ENV: token}
        self.open = 0
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.environment
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            if line.startswith(b"open "):
                self.open = int(line.split()[1])

    async def stop(self) -> None:
        if self.process is None:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()
        if self._reader is not None:
            await self._reader


async def streams(server: Server, broker_url: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    workers = start_workers(server, broker_url, 2, args.stream_concurrency, args.delay, args.long_delay)
    owner_email = f"streams-{uuid.uuid4().hex[:6]}@example.com"
    owner = server.add_user(owner_email, PASSWORD)
    clients = [server.add_user(f"client{i}-{uuid.uuid4().hex[:6]}@example.com", PASSWORD) for i in range(args.clients)]
    status_ms: list[float] = []
    health_ms: list[float] = []
    login_ms: list[float] = []
    open_samples: list[int] = []
    errors: list[str] = []
    stop = asyncio.Event()
    holders: StreamHolders | None = None
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as client:
            long_jobs = [
                await submit(client, owner, f"Long storyboard {i}: a lighthouse keeper's year", 12, LONG_SETTINGS)
                for i in range(args.stream_jobs)
            ]
            holders = StreamHolders(server.base_url, long_jobs, owner["Authorization"].split()[1], args.streams)
            await holders.start()
            opening = time.monotonic()
            while holders.open < args.streams and time.monotonic() < opening + 300:
                await asyncio.sleep(0.1)
            open_s = time.monotonic() - opening

            async def submitter(headers: dict[str, str], index: int) -> None:
                async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as mine:
                    for n in range(args.per_client):
                        job = await submit(mine, headers, f"Client {index}-{n}: artisan coffee", 2)
                        while True:
                            started = time.perf_counter()
                            response = await mine.get(f"/api/generations/{job}", headers=headers)
                            status_ms.append((time.perf_counter() - started) * 1000)
                            if response.status_code != 200:
                                errors.append(f"status: HTTP {response.status_code}")
                                break
                            if response.json()["status"] in FINAL:
                                break
                            await asyncio.sleep(0.1)

            async def timed(into: list[float], name: str, request: Any) -> None:
                started = time.perf_counter()
                response = await request
                into.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors.append(f"{name}: HTTP {response.status_code}")

            async def health_prober() -> None:
                async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as probe:
                    while not stop.is_set():
                        await timed(health_ms, "/health", probe.get("/health"))
                        open_samples.append(holders.open)
                        await asyncio.sleep(args.health_every)

            async def login_prober() -> None:
                # A login costs an argon2 hash (~0.1-0.2 s of both cores here): probing that it
                # works every 2 s, not loading the machine with it.
                form = {"username": owner_email, "password": PASSWORD}
                async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as probe:
                    while not stop.is_set():
                        await timed(login_ms, "login", probe.post("/api/login/access-token", data=form))
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=args.login_every)

            probes = [asyncio.create_task(health_prober()), asyncio.create_task(login_prober())]
            started = time.perf_counter()
            await asyncio.gather(*(submitter(headers, i) for i, headers in enumerate(clients)))
            elapsed = time.perf_counter() - started
            stop.set()
            await asyncio.gather(*probes)
    finally:
        if holders is not None:
            await holders.stop()
        for worker in workers:
            worker.stop()
    for error in errors[:10]:
        print(f"error: {error}", file=sys.stderr)
    return [
        (
            "event streams open during the load",
            f"min {min(open_samples, default=0)} / max {max(open_samples, default=0)} of {args.streams}, "
            f"following {args.stream_jobs} running 12-scene storyboards",
        ),
        ("time to open them", f"{open_s:.1f} s"),
        ("submitting clients", f"{args.clients} x {args.per_client} storyboards, polling every 0.1 s"),
        ("load duration", f"{elapsed:.1f} s"),
        (
            "GET /api/generations/{id} p50 / p99",
            f"{percentile(status_ms, 50):.1f} / {percentile(status_ms, 99):.1f} ms",
        ),
        (
            f"GET /health p50 / p99 (every {args.health_every:g} s)",
            f"{percentile(health_ms, 50):.1f} / {percentile(health_ms, 99):.1f} ms",
        ),
        (
            f"POST /api/login/access-token p50 / p99 (every {args.login_every:g} s)",
            f"{percentile(login_ms, 50):.1f} / {percentile(login_ms, 99):.1f} ms",
        ),
        ("requests measured (status / health / login)", f"{len(status_ms)} / {len(health_ms)} / {len(login_ms)}"),
        ("errors", str(len(errors))),
    ]


async def run(args: argparse.Namespace) -> int:
    reason = skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    rows: list[tuple[str, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="imageforge-bench-") as folder,
        redis_server(Path(folder)) as broker_url,
        fresh_postgres_database() as database_url,
    ):
        server = Server(
            Path(folder),
            {
                "IMAGEFORGE_DATABASE_URL": database_url,
                "IMAGEFORGE_BROKER_URL": broker_url,
                "IMAGEFORGE_QUEUE_SIZE": "10000",
                "IMAGEFORGE_MAX_JOBS_PER_USER": "10000",
                # The status prober logs in every 0.25 s from one address: not what the throttle guards.
                "IMAGEFORGE_LOGIN_LIMIT_PER_ACCOUNT": "100000/minute",
                "IMAGEFORGE_LOGIN_LIMIT_PER_ADDRESS": "100000/minute",
                **SLOW_GENERATOR_ENV,
            },
        )
        server.start()
        try:
            if args.which in ("throughput", "all"):
                rows += await throughput(server, broker_url, args)
            if args.which in ("streams", "all"):
                rows += await streams(server, broker_url, args)
        finally:
            server.stop()
    print("| metric | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="?", choices=("throughput", "streams", "all", "hold"), default="all")
    parser.add_argument("--storyboards", type=int, default=16, help="storyboards per throughput run")
    parser.add_argument("--concurrency", type=int, default=2, help="jobs each worker runs at once")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the generator sleeps per call")
    parser.add_argument("--streams", type=int, default=200, help="event streams held open")
    parser.add_argument("--stream-jobs", type=int, default=4, help="long jobs (12 scenes) the streams follow")
    parser.add_argument("--stream-concurrency", type=int, default=8, help="jobs each of the 2 workers runs at once")
    parser.add_argument("--clients", type=int, default=20, help="clients submitting and polling")
    parser.add_argument("--per-client", type=int, default=2, help="storyboards each client submits")
    parser.add_argument(
        "--long-delay", type=float, default=40.0, help="generator seconds per megapixel, for the long storyboards"
    )
    parser.add_argument("--login-every", type=float, default=2.0, help="seconds between two login probes")
    parser.add_argument(
        "--health-every",
        type=float,
        default=0.05,
        help="seconds between two /health probes (0.05: ~500 samples, enough for a p99); "
        "the open streams are counted at each",
    )
    parser.add_argument(
        "--workers-on",
        type=int,
        default=None,
        metavar="CPU",
        help="run the workers on this CPU only, at nice 10 (`taskset`): in a deployment they run on GPU "
        "machines of their own, not on the API's cores",
    )
    parser.add_argument("--base-url", help=argparse.SUPPRESS)  # the `hold` mode's (internal)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.which == "hold":
        raise SystemExit(asyncio.run(hold_streams(args)))
    if args.workers_on is not None:
        WORKER_PREFIX[:] = ["taskset", "-c", str(args.workers_on), "nice", "-n", "10"]
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
