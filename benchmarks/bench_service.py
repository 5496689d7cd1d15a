"""Service benchmark (issue 4), run by hand: `python benchmarks/bench_service.py`.

Starts a real uvicorn server on 127.0.0.1 with the offline backends (heuristic agents,
sketch generator, offline scorers) and a temporary data folder, then 20 concurrent clients
submit 200 two-scene storyboards between them and poll their status documents until every
one is finished. Reported: throughput (storyboards/s, first submission to last completion),
p50/p99 latency of GET /api/generations/{id} while the load runs, peak server RSS, request
errors and jobs lost (accepted but not completed). Target: p99 status latency < 50 ms,
no errors, no job lost.

Client and server share the machine, so the latencies include the clients' own scheduling.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from imageforge.api.core.metrics import percentile as service_percentile
from tests.api.server import Server

SETTINGS = {"num_variations": 2, "max_enhancement_iterations": 1, "max_retries": 0, "resolution": 128}
FINAL = {"completed", "failed", "cancelled"}


@dataclass
class Results:
    submitted: list[str] = field(default_factory=list)
    final: dict[str, str] = field(default_factory=dict)
    status_latencies_ms: list[float] = field(default_factory=list)
    status_times: list[float] = field(default_factory=list)
    last_submit: float = 0.0
    submit_latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    peak_rss: int = 0


def rss_bytes(pid: int) -> int:
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def sample_rss(pid: int, results: Results, stop: asyncio.Event) -> None:
    while not stop.is_set():
        results.peak_rss = max(results.peak_rss, rss_bytes(pid))
        await asyncio.sleep(0.2)


async def client_run(
    index: int, count: int, base_url: str, headers: dict[str, str], poll_s: float, results: Results
) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60.0) as client:
        mine: list[str] = []
        for n in range(count):
            body = {
                "prompt": f"Storyboard {index}-{n}: artisan coffee that starts your morning right",
                "num_scenes": 2,
                "settings": SETTINGS,
            }
            started = time.perf_counter()
            try:
                response = await client.post("/api/generate", json=body)
            except httpx.HTTPError as exc:
                results.errors.append(f"submit: {type(exc).__name__}: {exc}")
                continue
            results.submit_latencies_ms.append((time.perf_counter() - started) * 1000)
            results.last_submit = max(results.last_submit, time.perf_counter())
            if response.status_code != 202:
                results.errors.append(f"submit: HTTP {response.status_code} {response.text[:200]}")
                continue
            generation_id = response.json()["generation_id"]
            mine.append(generation_id)
            results.submitted.append(generation_id)
        pending = set(mine)
        while pending:
            for generation_id in sorted(pending):
                started = time.perf_counter()
                try:
                    response = await client.get(f"/api/generations/{generation_id}")
                except httpx.HTTPError as exc:
                    results.errors.append(f"status: {type(exc).__name__}: {exc}")
                    continue
                results.status_latencies_ms.append((time.perf_counter() - started) * 1000)
                results.status_times.append(started)
                if response.status_code != 200:
                    results.errors.append(f"status: HTTP {response.status_code}")
                    continue
                status = response.json()["status"]
                if status in FINAL:
                    results.final[generation_id] = status
                    pending.discard(generation_id)
                await asyncio.sleep(poll_s)


def percentile(values: list[float], q: int) -> float:
    """The service's own percentile (``statistics.quantiles``); NaN for no values."""
    value = service_percentile(values, q)
    return float("nan") if value is None else value


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="imageforge-bench-") as folder:
        server = Server(
            Path(folder),
            {
                "IMAGEFORGE_WORKERS": str(args.workers),
                "IMAGEFORGE_QUEUE_SIZE": str(args.storyboards + 10),
                # One user submits everything here: lift the fairness cap and the login throttle.
                "IMAGEFORGE_MAX_JOBS_PER_USER": str(args.storyboards + 10),
                "IMAGEFORGE_LOGIN_LIMIT_PER_ACCOUNT": "100000/minute",
                "IMAGEFORGE_LOGIN_LIMIT_PER_ADDRESS": "100000/minute",
            },
        )
        server.start()
        try:
            headers = server.add_user("bench@example.com")
            assert server.process is not None
            results = Results()
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_rss(server.process.pid, results, stop))
            per_client = [
                args.storyboards // args.clients + (1 if i < args.storyboards % args.clients else 0)
                for i in range(args.clients)
            ]
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    client_run(i, n, server.base_url, headers, args.poll_interval, results)
                    for i, n in enumerate(per_client)
                )
            )
            elapsed = time.perf_counter() - started
            stop.set()
            await sampler
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60.0) as client:
                listed = (await client.get("/api/generations", params={"status": "completed", "limit": 1})).json()[
                    "count"
                ]
        finally:
            server.stop()

    completed = sum(1 for status in results.final.values() if status == "completed")
    lost = len(results.submitted) - completed
    p50 = percentile(results.status_latencies_ms, 50)
    p99 = percentile(results.status_latencies_ms, 99)
    steady = [
        ms
        for ms, at in zip(results.status_latencies_ms, results.status_times, strict=False)
        if at > results.last_submit
    ]
    rows = [
        ("storyboards submitted", f"{len(results.submitted)} ({args.clients} concurrent clients, 2 scenes each)"),
        ("server workers", str(args.workers)),
        ("completed (status documents / history)", f"{completed} / {listed}"),
        ("wall time", f"{elapsed:.1f} s"),
        ("throughput", f"{completed / elapsed:.2f} storyboards/s"),
        ("GET /api/generations/{id} p50", f"{p50:.1f} ms"),
        ("GET /api/generations/{id} p99", f"{p99:.1f} ms (target < 50 ms)"),
        (
            "  p50 / p99 after the last submission",
            f"{percentile(steady, 50):.1f} / {percentile(steady, 99):.1f} ms" if steady else "n/a",
        ),
        ("status requests measured", str(len(results.status_latencies_ms))),
        (
            "POST /api/generate p50 / p99",
            f"{percentile(results.submit_latencies_ms, 50):.1f} / {percentile(results.submit_latencies_ms, 99):.1f} ms",
        ),
        ("peak server RSS", f"{results.peak_rss / 2**20:.0f} MiB"),
        ("request errors", str(len(results.errors))),
        ("jobs lost", str(lost)),
    ]
    print("| metric | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    for error in results.errors[:10]:
        print(f"error: {error}", file=sys.stderr)
    print(f"(status latency mean {statistics.fmean(results.status_latencies_ms):.1f} ms)", file=sys.stderr)
    return 0 if not results.errors and lost == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storyboards", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="IMAGEFORGE_WORKERS of the server")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="seconds between one client's status requests")
    raise SystemExit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
