"""Fair-admission benchmark (issue 9), run by hand: `python benchmarks/bench_fairness.py`.

A second user's queue wait while the first floods, embedded mode (one `imageforge serve`
process, its own job runner) with a generator that sleeps (tests/slow_generator.py), so the
machine's cores are not what limits the jobs. Each policy gets a fresh server:

- ``uncapped``: no per-user cap (``max_jobs_per_user`` far above the flood), so admission is
  the global queue alone.
- ``capped``: ``max_jobs_per_user`` (``--cap``, the default 4).

Either runs with the dequeue order of the code the server runs: this tree's (per-user
round-robin, ``api.services.fair_queue``), or, with ``--tree DIR``, another checkout's, e.g.
the commit before fair admission, a global FIFO without a cap (``git archive <commit> | tar
-x -C DIR``; the server then imports ``imageforge`` from DIR). The report names the order.

The flooder submits ``--flood`` one-scene storyboards at once, then keeps trying to have that
many outstanding for the whole run (submitting again as its jobs finish, and coming back
after every 429), as a script in a loop would. After
``--head-start`` seconds the second user submits one storyboard, waits for it to finish, and
repeats ``--samples`` times. Reported per policy: the second user's queue wait (its
``started_at - created_at``, server clock), its submit answers, the flooder's accepted and
refused submissions, the measured job time T, and the bound the policy promises:

- FIFO without a cap: wait ~ (jobs ahead) x T / W, unbounded as the flood grows.
- Per-user cap alone (also Celery's FIFO in the distributed mode): wait <= cap x T / W per
  flooding user, whatever the flood's size; with U users flooding, <= U x cap x T / W.
- Round-robin at dequeue (embedded), with or without the cap: the newcomer's job is next
  after the current turn, so it starts when the first worker frees: wait <= T (T / W on
  average when the running jobs are staggered), whatever the flood's size. The cap still
  matters there: it keeps the flooder from filling the global queue (a 429 for everyone).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.api.server import SLOW_GENERATOR_ENV, Server

SETTINGS = {"num_variations": 1, "max_enhancement_iterations": 1, "max_retries": 0, "resolution": 128}
BODY = {"prompt": "a lighthouse at dusk", "num_scenes": 1, "settings": SETTINGS}
FINAL = {"completed", "failed", "cancelled"}


@dataclass
class Run:
    policy: str
    waits_s: list[float] = field(default_factory=list)
    second_refused: int = 0
    flood_accepted: int = 0
    flood_refused: int = 0
    job_times_s: list[float] = field(default_factory=list)
    dequeue: str = ""


def _seconds(document: dict[str, Any], name: str) -> datetime:
    return datetime.fromisoformat(str(document[name]))


def _wait_final(http: httpx.Client, generation_id: str, headers: dict[str, str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        document = http.get(f"/api/generations/{generation_id}", headers=headers).json()
        if document["status"] in FINAL:
            return document
        if time.monotonic() > deadline:
            raise TimeoutError(f"{generation_id} still {document['status']} after {timeout_s} s")
        time.sleep(0.05)


def _runner_order(tree: Path) -> str:
    """Which dequeue order the embedded runner of ``tree`` uses."""
    return "round-robin (FairQueue)" if "FairQueue" in (tree / "api/services/jobs.py").read_text() else "FIFO"


def _tree_path(tree: Path, folder: Path) -> dict[str, str]:
    """PYTHONPATH that makes the server import ``imageforge`` from ``tree``: a package of
    links to its layer folders (as .ci/typecheck builds), ahead of the editable install."""
    if tree.resolve() == ROOT:
        return {}
    package = folder / "tree" / "imageforge"
    package.mkdir(parents=True)
    for layer in ("agents", "api", "graph", "scoring", "tools", "traces"):
        (package / layer).symlink_to((tree / layer).resolve(), target_is_directory=True)
    return {"PYTHONPATH": ":".join([str(package.parent), str(ROOT), str(ROOT / "tests")])}


_ADD_USER = """
import sys
from sqlmodel import Session
from imageforge.api.core.config import Settings
from imageforge.api.core.db import create_db_engine, init_db
from imageforge.api.core.security import create_access_token
from imageforge.api.crud import user as crud
from imageforge.api.models.user import UserCreate
settings = Settings(_env_file=None)
engine = create_db_engine(settings)
init_db(engine)
with Session(engine) as session:
    user = crud.create_user(session=session, user_create=UserCreate(email=sys.argv[1], password="password123"))
print(create_access_token(user.id, settings))
"""


def _add_user(server: Server, email: str) -> dict[str, str]:
    """A user made by the code the server runs (another checkout's schema and tokens may differ)."""
    if "PYTHONPATH" not in server.env_overrides:
        return server.add_user(email)
    done = subprocess.run(
        [sys.executable, "-c", _ADD_USER, email],
        env=server.environment(),
        cwd=server.root,
        capture_output=True,
        text=True,
        check=True,
    )
    return {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}


def _accepted(response: httpx.Response) -> bool:
    if response.status_code in (202, 429):
        return response.status_code == 202
    raise RuntimeError(f"submit answered {response.status_code}: {response.text}")


def run_policy(policy: str, args: argparse.Namespace) -> Run:
    cap = args.cap if policy == "capped" else 10_000
    result = Run(policy=policy, dequeue=_runner_order(args.tree))
    with tempfile.TemporaryDirectory(prefix="imageforge-fairness-") as folder:
        server = Server(Path(folder))
        server.start(
            **_tree_path(args.tree, Path(folder)),
            **SLOW_GENERATOR_ENV,
            SLOW_GENERATOR_DELAY_S=str(args.delay),
            IMAGEFORGE_WORKERS=str(args.workers),
            IMAGEFORGE_QUEUE_SIZE="1000",
            IMAGEFORGE_MAX_JOBS_PER_USER=str(cap),
            IMAGEFORGE_RETRY_AFTER_S="1",
        )
        try:
            flooder = _add_user(server, "flood@example.com")
            second = _add_user(server, "second@example.com")
            stop = threading.Event()
            flood_ids: list[str] = []

            def outstanding(http: httpx.Client) -> int:
                total = 0
                for status in ("queued", "running"):
                    response = http.get("/api/generations", params={"status": status, "limit": 1}, headers=flooder)
                    total += int(response.raise_for_status().json()["count"])
                return total

            def submit(http: httpx.Client) -> bool:
                response = http.post("/api/generate", json=BODY, headers=flooder)
                if _accepted(response):
                    result.flood_accepted += 1
                    flood_ids.append(response.json()["generation_id"])
                    return True
                result.flood_refused += 1
                return False

            failures: list[BaseException] = []

            def flood() -> None:
                try:
                    flood_loop()
                except BaseException as exc:  # reported by the main thread
                    failures.append(exc)
                    stop.set()

            def flood_loop() -> None:
                """``--flood`` at once, then keep that many outstanding (a script retrying on 429)."""
                with httpx.Client(base_url=server.base_url, timeout=30) as http:
                    for _ in range(args.flood):
                        submit(http)
                    while not stop.is_set():
                        missing = args.flood - outstanding(http)
                        for _ in range(max(0, missing)):
                            if not submit(http):
                                break
                        stop.wait(0.2)

            thread = threading.Thread(target=flood, name="flooder")
            thread.start()
            time.sleep(args.head_start)
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                for _ in range(args.samples):
                    while True:
                        response = http.post("/api/generate", json=BODY, headers=second)
                        if _accepted(response):
                            break
                        result.second_refused += 1
                        time.sleep(0.2)
                    generation_id = response.json()["generation_id"]
                    document = _wait_final(http, generation_id, second, timeout_s=args.timeout)
                    result.waits_s.append(
                        (_seconds(document, "started_at") - _seconds(document, "created_at")).total_seconds()
                    )
                stop.set()
                thread.join()
                if failures:
                    raise RuntimeError("the flooder failed") from failures[0]
                for generation_id in flood_ids[:20]:
                    document = http.get(f"/api/generations/{generation_id}", headers=flooder).json()
                    if document["status"] == "completed" and document.get("elapsed_s"):
                        result.job_times_s.append(float(document["elapsed_s"]))
        finally:
            server.stop()
    return result


def report(result: Run, args: argparse.Namespace) -> None:
    job_s = statistics.median(result.job_times_s) if result.job_times_s else float("nan")
    waits = sorted(result.waits_s)
    cap = args.cap if result.policy == "capped" else None
    print(f"\npolicy {result.policy}: cap {cap or 'none'}, dequeue {result.dequeue}, {args.workers} workers")
    print(f"  job time T (median of the flooder's finished jobs): {job_s:.2f} s")
    print(
        f"  second user's queue wait over {len(waits)} jobs: median {statistics.median(waits):.2f} s, "
        f"max {waits[-1]:.2f} s; its submits refused: {result.second_refused}"
    )
    print(f"  flooder: {result.flood_accepted} accepted, {result.flood_refused} refused (429)")
    workers = args.workers
    if result.dequeue == "FIFO" and cap is None:
        bound = f"{args.flood} jobs ahead x T / W = {args.flood * job_s / workers:.2f} s, growing with the flood"
    elif result.dequeue == "FIFO":
        bound = f"cap x T / W = {cap * job_s / workers:.2f} s"
    else:
        bound = f"at most T = {job_s:.2f} s (round-robin: its job is next, and starts when a worker frees)"
    print(f"  the policy's bound on that wait: {bound}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", nargs="+", choices=["uncapped", "capped"], default=["uncapped", "capped"])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose code the server runs")
    parser.add_argument("--workers", type=int, default=2, help="IMAGEFORGE_WORKERS")
    parser.add_argument("--cap", type=int, default=4, help="IMAGEFORGE_MAX_JOBS_PER_USER of the capped policy")
    parser.add_argument("--flood", type=int, default=30, help="storyboards the flooder submits at once")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds the generator sleeps per call")
    parser.add_argument("--head-start", type=float, default=1.0, help="seconds of flood before the second user")
    parser.add_argument("--samples", type=int, default=3, help="the second user's jobs, one after another")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for one of its jobs")
    args = parser.parse_args()
    for policy in args.policies:
        report(run_policy(policy, args), args)


if __name__ == "__main__":
    main()
