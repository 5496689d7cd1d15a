"""Upload memory benchmark (issue 10, finding 4), run by hand: `python benchmarks/bench_uploads.py`.

Starts a real uvicorn server on 127.0.0.1 (offline backends, temporary data folder), then sends
8 image uploads at once to POST /api/v1/characters/{id}/references (the upload path alone: spool,
header check, bounded decode, PNG re-encode, store; no job) while a thread samples the server's
RSS every 5 ms and another user lists their characters in a loop. Reported per scenario: peak
RSS growth over the idle server, RSS growth left 3 s after the burst, the slowest concurrent
request of the other user, and the answers.

Scenarios:
- `near-limit`: the defaults (16.7 MP limit, 2048 px long edge, 2 decodes at once) and 8
  RGBA PNGs of 4096 x 4096, just under the limit. Target: under 1 GB of peak growth, and the
  memory returns afterwards.
- `finding`: the finding's image, a small PNG of 6300 x 6300 (40 MP), under the old 40 MP
  limit, with the limit raised back to 40 MP: what the bounds do for it.
- `unbounded`: the same 40 MP images with the bounds switched off as far as settings allow
  (8 decodes at once, no reduction): about the code path before the fix.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.api.server import Server

SCENARIOS: dict[str, tuple[tuple[int, int], dict[str, str]]] = {
    "near-limit": ((4096, 4096), {}),
    "finding": ((6300, 6300), {"IMAGEFORGE_MAX_IMAGE_PIXELS": "40000000"}),
    "unbounded": (
        (6300, 6300),
        {
            "IMAGEFORGE_MAX_IMAGE_PIXELS": "40000000",
            "IMAGEFORGE_UPLOAD_DECODE_CONCURRENCY": "8",
            "IMAGEFORGE_UPLOAD_MAX_SIDE": "16384",
        },
    ),
}


def test_image(size: tuple[int, int]) -> bytes:
    """An RGBA PNG with a little structure (a flat image would be even smaller): about 100-150 KB."""
    image = Image.new("RGBA", size, (40, 90, 160, 255))
    draw = ImageDraw.Draw(image)
    for offset in range(0, size[0], 97):
        draw.line([(offset, 0), (size[0] - offset, size[1])], fill=(230, 200, 40, 200), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def run(name: str, uploads: int) -> dict[str, float | str]:
    size, env = SCENARIOS[name]
    data = test_image(size)
    with tempfile.TemporaryDirectory(prefix="imageforge-bench-uploads-") as folder:
        server = Server(Path(folder), dict(env)).start(timeout_s=300)  # slow on a loaded machine
        try:
            owner = server.add_user("owner@example.com")
            other = server.add_user("other@example.com")
            assert server.process is not None
            process = psutil.Process(server.process.pid)
            with httpx.Client(base_url=server.base_url, timeout=300.0) as client:
                character = client.post("/api/v1/characters", json={"name": "Maya"}, headers=owner).json()
                url = f"/api/v1/characters/{character['id']}/references"

                def upload(content: bytes) -> int:
                    files = {"image": ("ref.png", content, "image/png")}
                    form = {"kind": "core", "angle": "front"}
                    return client.post(url, data=form, files=files, headers=owner).status_code

                small = io.BytesIO()
                Image.new("RGB", (64, 64)).save(small, format="PNG")
                upload(small.getvalue())  # warm up: imports, first decode, first PNG encode
                time.sleep(1.0)
                baseline = process.memory_info().rss
                peak = baseline
                done = threading.Event()
                slowest = 0.0

                def sample() -> None:
                    nonlocal peak
                    while not done.is_set():
                        peak = max(peak, process.memory_info().rss)
                        time.sleep(0.005)

                def other_user() -> None:
                    nonlocal slowest
                    with httpx.Client(base_url=server.base_url, timeout=60.0) as side:
                        while not done.is_set():
                            start = time.perf_counter()
                            side.get("/api/v1/characters", headers=other)
                            slowest = max(slowest, time.perf_counter() - start)
                            time.sleep(0.02)

                threads = [threading.Thread(target=sample), threading.Thread(target=other_user)]
                for thread in threads:
                    thread.start()
                start = time.perf_counter()
                with ThreadPoolExecutor(uploads) as pool:
                    codes = list(pool.map(upload, [data] * uploads))
                wall = time.perf_counter() - start
                done.set()
                for thread in threads:
                    thread.join()
                time.sleep(3.0)
                after = process.memory_info().rss
        finally:
            server.stop()
    mb = 1024 * 1024
    return {
        "scenario": name,
        "image": f"{size[0]}x{size[1]}, {len(data) // 1024} KB",
        "answers": ", ".join(f"{codes.count(c)}x{c}" for c in sorted(set(codes))),
        "wall_s": wall,
        "peak_growth_mb": (peak - baseline) / mb,
        "left_after_mb": (after - baseline) / mb,
        "slowest_other_s": slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8, help="Uploads sent at once.")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = parser.parse_args()
    print(f"{args.uploads} parallel uploads to POST /api/v1/characters/{{id}}/references\n")
    print("| scenario | image | answers | wall s | peak RSS growth MB | left after 3 s MB | slowest other request s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.scenarios:
        r = run(name, args.uploads)
        print(
            f"| {r['scenario']} | {r['image']} | {r['answers']} | {r['wall_s']:.2f} | {r['peak_growth_mb']:.0f} "
            f"| {r['left_after_mb']:.0f} | {r['slowest_other_s']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
