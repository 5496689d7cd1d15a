"""Pipelined scenes (issue 9), run by hand: `python benchmarks/bench_pipeline.py`.

A storyboard of 4 explicit scenes whose chat-model latency differs per scene (each call of
scene k sleeps DELAYS[k] s) and a generator that sleeps 0.3 s per attempt. Every scene runs
exactly `--iterations` critique rounds (approval threshold 100) and one attempt (thresholds
0), so the work is fixed and the ideal schedule can be computed:

    prompt_k   = 2 * iterations * DELAYS[k]            (its enhancement, alone)
    start_k    = max(prompt_k, done_{k-1})             (its own prompt, and the previous winner)
    done_k     = start_k + generator sleep
    bound      = done_4

The measured wall time (plan to run_done) is compared with that critical-path bound; target:
within 1.1x. A graph with a barrier after enhancement (every prompt final before scene 1
starts) cannot get under max(prompt_k) + 4 * sleep.

`--loop-lag` measures instead how responsive the event loop stays while storyboards run on
it (what a request handler sharing the loop would feel): two concurrent 4-scene storyboards
with the offline backends at 512 px and N=4 (sketch rendering, PNG encoding, scoring and
trace writes all in worker threads), while a probe sleeps 2 ms in a loop and records how
late it wakes. Once at the interpreter's default switch interval (5 ms) and once at 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factories import make_context, offline_services
from fakes import SleepyChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult

from imageforge.agents.messages import read_payload
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.tools.schemas import GenerationOutput
from imageforge.tools.sketch import SketchGenerator

CONCEPT = "Artisan coffee that starts your morning right"
SCENES = [
    "Barista grinds fresh beans at dawn",
    "Close-up of latte art in a ceramic cup",
    "Customer smiles at the first sip by the window",
    "Steam rising over the finished cup, logo on the saucer",
]
#: Seconds per chat-model call, by scene number: fast first scene, slower later ones.
DELAYS = {1: 0.1, 2: 0.3, 3: 0.5, 4: 0.6}


class PerSceneChatModel(SleepyChatModel):
    """SleepyChatModel whose latency depends on the scene the request is about."""

    delays: ClassVar[dict[int, float]] = DELAYS

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        tool_name: str | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        first_user = next(m for m in messages if isinstance(m, HumanMessage))
        scene = read_payload(str(first_user.content)).get("scene") or {}
        self.calls += 1
        await asyncio.sleep(self.delays.get(int(scene.get("scene_number", 0)), self.delay_s))
        return self._reply(messages, tool_name)


class SleepingGenerator(SketchGenerator):
    """The sketch generator after a fixed sleep per call: a stand-in for a busy GPU."""

    sleep_s = 0.3

    def generate(self, prompt: str, **kwargs: Any) -> GenerationOutput:
        time.sleep(self.sleep_s)
        return super().generate(prompt, **kwargs)


def critical_path(iterations: int, sleep_s: float) -> tuple[float, float]:
    """(pipelined bound, barrier bound) for the fixed work described above."""
    done = 0.0
    for k in sorted(DELAYS):
        done = max(2 * iterations * DELAYS[k], done) + sleep_s
    barrier = max(2 * iterations * d for d in DELAYS.values()) + len(DELAYS) * sleep_s
    return done, barrier


async def run_once(iterations: int, sleep_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        llm = PerSceneChatModel()
        context = make_context(
            Path(folder),
            llm=llm,
            num_variations=2,
            max_enhancement_iterations=iterations,
            approval_threshold=100.0,
            quality_threshold=0.0,
            consistency_threshold=0.0,
            max_retries=0,
        )
        generator = SleepingGenerator()
        generator.sleep_s = sleep_s
        context.services = offline_services(llm)
        context.services.generator = generator
        marks: dict[str, list[float]] = {}
        started = time.perf_counter()

        def on_event(event: dict) -> None:
            key = f"{event['type']}:{event.get('scene')}"
            marks.setdefault(key, []).append(round(time.perf_counter() - started, 3))

        request = StoryboardRequest(generation_id="bench", concept=CONCEPT, scenes=SCENES)
        summary = await run_storyboard(request, context, on_event=on_event)
        wall = time.perf_counter() - started
        assert summary.status == "completed", summary.error
        assert all(len(s.attempts) == 1 for s in summary.scenes)
        return {
            "wall_s": wall,
            "prompt_final": [marks[f"enhance_done:{k}"][0] for k in DELAYS],
            "generate_start": [marks[f"attempt_started:{k}"][0] for k in DELAYS],
            "scene_done": [marks[f"scene_done:{k}"][0] for k in DELAYS],
            "calls": llm.calls,
        }


async def loop_lag(switch_interval_s: float, repeats: int) -> dict[str, float]:
    """Wake-up lateness of a 2 ms sleeper while two storyboards run on the same loop."""
    sys.setswitchinterval(switch_interval_s)
    lags: list[float] = []
    walls: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            done = asyncio.Event()

            async def probe(done: asyncio.Event = done) -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    await asyncio.sleep(0.002)
                    lags.append(time.perf_counter() - started - 0.002)

            async def storyboard(name: str) -> None:
                context = make_context(Path(folder), num_variations=4, resolution=512, seed=3)
                request = StoryboardRequest(generation_id=name, concept=CONCEPT, num_scenes=4)
                summary = await run_storyboard(request, context)
                assert summary.status == "completed", summary.error

            prober = asyncio.create_task(probe())
            started = time.perf_counter()
            await asyncio.gather(storyboard("a"), storyboard("b"))
            walls.append(time.perf_counter() - started)
            done.set()
            await prober
    lags.sort()
    return {
        "p50_ms": 1000 * lags[len(lags) // 2],
        "p99_ms": 1000 * lags[int(len(lags) * 0.99)],
        "max_ms": 1000 * lags[-1],
        "wall_s": statistics.median(walls),
    }


async def main_loop_lag(repeats: int) -> None:
    default = sys.getswitchinterval()
    await loop_lag(default, 1)  # warm imports and caches
    print("## Event-loop lag while 2 storyboards run on the loop (offline backends, 512 px, N=4)\n")
    print(f"Median wall time and the probe's lateness over {repeats} run(s).\n")
    print("| switch interval | p50 lag ms | p99 lag ms | max lag ms | wall s (2 storyboards) |")
    print("|---|---|---|---|---|")
    for interval in (default, 0.001):
        m = await loop_lag(interval, repeats)
        lag = f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['max_ms']:.1f}"
        print(f"| {interval * 1000:g} ms | {lag} | {m['wall_s']:.2f} |")
    sys.setswitchinterval(default)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2, help="critique rounds per scene (2 calls each)")
    parser.add_argument("--sleep", type=float, default=0.3, help="generator sleep per attempt, seconds")
    parser.add_argument("--loop-lag", action="store_true", help="measure event-loop lag instead (see above)")
    args = parser.parse_args()
    if args.loop_lag:
        await main_loop_lag(args.repeats)
        return

    bound, barrier = critical_path(args.iterations, args.sleep)
    runs = [await run_once(args.iterations, args.sleep) for _ in range(args.repeats)]
    wall = statistics.median(r["wall_s"] for r in runs)
    typical = min(runs, key=lambda r: abs(r["wall_s"] - wall))
    delays = ", ".join(f"scene {k} {d:g} s" for k, d in DELAYS.items())
    print(f"## Pipelined scenes: 4 scenes, chat model per call: {delays}; generator sleeps {args.sleep:g} s\n")
    print(f"{args.iterations} critique rounds per scene ({typical['calls']} LLM calls), 1 attempt per scene.\n")
    print("| scene | prompt final s | generation starts s | scene done s |")
    print("|---|---|---|---|")
    for k in DELAYS:
        i = k - 1
        print(
            f"| {k} | {typical['prompt_final'][i]:.2f} | {typical['generate_start'][i]:.2f} "
            f"| {typical['scene_done'][i]:.2f} |"
        )
    print(
        f"\nWall time (median of {args.repeats}): **{wall:.2f} s**; critical-path bound {bound:.2f} s "
        f"-> **{wall / bound:.2f}x** (target <= 1.1x); a barrier after enhancement cannot beat {barrier:.2f} s."
    )


if __name__ == "__main__":
    asyncio.run(main())
