"""A worker's device busy fraction against its concurrency (issue 9), run by hand:
`python benchmarks/bench_device_busy.py`.

DESIGN.md ("Execution"): most of a storyboard's wall time is the critique loop waiting on the
LLM, so a worker that runs one storyboard at a time leaves its GPU idle. A worker runs
several jobs at once on its event loop and only the device calls queue for the device
(tools.devices.device_lock). This runs K storyboards at once on one loop, as a worker with
concurrency K does, with a chat model that sleeps per call and a generator that sleeps while
holding the device lock (a stand-in for a GPU batch), and reports the device's busy
fraction: time inside device calls / wall time. It also checks that the device calls never
overlapped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factories import make_context, offline_services
from fakes import SleepyChatModel

from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.tools.devices import device_lock
from imageforge.tools.schemas import GenerationOutput
from imageforge.tools.sketch import SketchGenerator

CONCEPT = "A lighthouse keeper's last night before automation"


class DeviceGenerator(SketchGenerator):
    """The sketch generator behind a sleep taken inside the device lock, timing the device."""

    sleep_s = 0.3
    busy_s = 0.0
    inside = 0
    overlaps = 0
    _guard = threading.Lock()

    def generate(self, prompt: str, **kwargs: Any) -> GenerationOutput:
        with device_lock("cuda:0"):
            with self._guard:
                type(self).inside += 1
                type(self).overlaps += type(self).inside > 1
            started = time.perf_counter()
            time.sleep(self.sleep_s)
            output = super().generate(prompt, **kwargs)
            with self._guard:
                type(self).busy_s += time.perf_counter() - started
                type(self).inside -= 1
        return output


async def run(concurrency: int, *, jobs: int, llm_delay: float, sleep_s: float, scenes: int) -> dict[str, float]:
    DeviceGenerator.busy_s = 0.0
    DeviceGenerator.overlaps = 0
    DeviceGenerator.sleep_s = sleep_s
    with tempfile.TemporaryDirectory() as folder:
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with gate:
                llm = SleepyChatModel(delay_s=llm_delay)
                context = make_context(
                    Path(folder), llm=llm, num_variations=2, max_enhancement_iterations=2, approval_threshold=100.0
                )
                context.services = offline_services(llm)
                context.services.generator = DeviceGenerator()
                request = StoryboardRequest(
                    generation_id=f"busy-{concurrency}-{index}", concept=CONCEPT, target_duration_s=scenes * 5
                )
                summary = await run_storyboard(request, context)
                assert summary.status == "completed", summary.error

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(jobs)))
        wall = time.perf_counter() - started
    return {"wall_s": wall, "busy": DeviceGenerator.busy_s / wall, "overlaps": DeviceGenerator.overlaps}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8, help="storyboards per measurement")
    parser.add_argument("--llm-delay", type=float, default=0.2, help="seconds per chat-model call")
    parser.add_argument("--sleep", type=float, default=0.3, help="seconds per generator call (device time)")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--concurrency", default="1,2,4,8")
    args = parser.parse_args()
    print(
        f"## Device busy fraction: {args.jobs} storyboards of {args.scenes} scenes, chat model "
        f"{args.llm_delay:g} s per call, generator {args.sleep:g} s per call inside the device lock\n"
    )
    print("| concurrency | wall s | device busy | overlapping device calls |")
    print("|---|---|---|---|")
    for k in (int(v) for v in args.concurrency.split(",")):
        result = await run(k, jobs=args.jobs, llm_delay=args.llm_delay, sleep_s=args.sleep, scenes=args.scenes)
        print(f"| {k} | {result['wall_s']:.2f} | {result['busy']:.0%} | {result['overlaps']} |")


if __name__ == "__main__":
    asyncio.run(main())
