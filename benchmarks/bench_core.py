"""Core pipeline benchmarks (issue 2), run by hand: `python benchmarks/bench_core.py`.

(a) Orchestration overhead per scene with the offline backends: the wall time of a whole
    storyboard minus the time spent inside the generator and the scorers, divided by the
    number of scenes. What remains is the graph, the heuristic agents, checkpoint-free state
    handling, PNG encoding/decoding and the trace writes. Target: under 50 ms per scene at N=4.
(b) Enhancement of 4 scenes x 4 iterations with a chat model that sleeps 0.2 s per call:
    the storyboard graph's concurrent fan-out vs the same enhancement subgraph run scene
    after scene. Target: concurrent at least 3x faster.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factories import make_context, offline_services
from fakes import SleepyChatModel

import imageforge.agents.cinematographer
import imageforge.agents.prompt_engineer
import imageforge.graph.scene
from imageforge.agents.heuristics import plan_heuristic
from imageforge.graph.enhancement import enhancement_graph
from imageforge.graph.run import StoryboardRequest, run_storyboard
from imageforge.graph.state import EnhanceInput

CONCEPT = "Artisan coffee that starts your morning right"


class Stopwatch:
    """Accumulates the wall time spent inside one attribute (a method or a module function)."""

    def __init__(self, target, name: str) -> None:
        self.total = 0.0
        original = getattr(target, name)
        if inspect.iscoroutinefunction(original):

            async def timed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.total += time.perf_counter() - started

        else:

            def timed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    self.total += time.perf_counter() - started

        setattr(target, name, timed)
        self.undo = lambda: setattr(target, name, original)


async def overhead_once(variations: int, resolution: int, scenes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        context = make_context(Path(folder), num_variations=variations, resolution=resolution, seed=3)
        context.services = offline_services()
        watches = [
            Stopwatch(context.services.generator, "generate"),
            Stopwatch(context.services.scorers.consistency, "score"),
        ]
        watches += [Stopwatch(scorer, "score") for scorer in context.services.scorers.scorers]
        png = Stopwatch(imageforge.graph.scene, "save_pngs")
        agents_time = [
            Stopwatch(imageforge.agents.cinematographer, "enhance"),
            Stopwatch(imageforge.agents.prompt_engineer, "review"),
        ]
        request = StoryboardRequest(generation_id="bench", concept=CONCEPT, num_scenes=scenes)
        started = time.perf_counter()
        summary = await run_storyboard(request, context)
        wall = time.perf_counter() - started
        for watch in [png, *agents_time]:
            watch.undo()
        assert summary.status == "completed", summary.error
        attempts = sum(len(s.attempts) for s in summary.scenes)
        models = sum(w.total for w in watches)
        per_scene = (wall - models) / scenes * 1000
        png_ms = png.total / scenes * 1000
        agents_ms = sum(w.total for w in agents_time) / scenes * 1000
        return {
            "wall_s": wall,
            "model_s": models,
            "attempts": attempts,
            "per_scene_ms": per_scene,
            "png_ms": png_ms,
            "agents_ms": agents_ms,
            "graph_ms": per_scene - png_ms - agents_ms,
        }


async def enhancement_ratio(delay_s: float, scenes: int, iterations: int) -> dict[str, float]:
    plan = plan_heuristic(CONCEPT, None, scenes)
    settings = {"max_enhancement_iterations": iterations, "approval_threshold": 100.0}
    with tempfile.TemporaryDirectory() as folder:
        llm = SleepyChatModel(delay_s=delay_s)
        context = make_context(Path(folder), llm=llm, **settings)
        started = time.perf_counter()
        for scene in plan.scenes:
            await enhancement_graph.ainvoke(
                EnhanceInput(generation_id="seq", scene=scene, markers=plan.markers), context=context
            )
        sequential = time.perf_counter() - started
        sequential_calls = llm.calls

        llm = SleepyChatModel(delay_s=delay_s)
        context = make_context(Path(folder), llm=llm, **settings)
        marks: list[float] = []
        started = time.perf_counter()

        def on_event(event: dict) -> None:
            if event["type"] == "enhance_done":
                marks.append(time.perf_counter() - started)

        request = StoryboardRequest(generation_id="conc", concept=CONCEPT, scenes=[s.prompt for s in plan.scenes])
        await run_storyboard(request, context, on_event=on_event)
        concurrent = max(marks)
    return {
        "sequential_s": sequential,
        "concurrent_s": concurrent,
        "ratio": sequential / concurrent,
        "calls": sequential_calls,
        "max_in_flight": llm.max_in_flight,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variations", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()

    await overhead_once(args.variations, 128, 1)  # warm imports and caches
    print("## (a) Overhead per scene (offline backends; generator and scorer time excluded)\n")
    print(f"N={args.variations}, {args.scenes} scenes, median of {args.repeats} runs. Columns are ms per scene.\n")
    print(
        "| resolution | wall s | generator+scorers s | non-model total | PNG encoding | heuristic agents "
        "| graph + trace files |"
    )
    print("|---|---|---|---|---|---|---|")
    for resolution in dict.fromkeys([args.resolution, 128]):
        runs = [await overhead_once(args.variations, resolution, args.scenes) for _ in range(args.repeats)]
        m = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(
            f"| {resolution}px | {m['wall_s']:.3f} | {m['model_s']:.3f} | {m['per_scene_ms']:.1f} | {m['png_ms']:.1f} "
            f"| {m['agents_ms']:.1f} | **{m['graph_ms']:.1f}** |"
        )
    print("\nTarget: orchestration (graph + trace files) under 50 ms per scene.\n")

    result = await enhancement_ratio(args.delay, args.scenes, 4)
    print(f"## (b) Enhancement, {args.scenes} scenes x 4 iterations, chat model sleeping {args.delay} s per call\n")
    print("| mode | wall s |")
    print("|---|---|")
    print(f"| sequential (scene after scene) | {result['sequential_s']:.2f} |")
    print(f"| concurrent (Send fan-out) | {result['concurrent_s']:.2f} |")
    print(
        f"\nRatio: **{result['ratio']:.2f}x** (target >= 3x); {result['calls']} LLM calls per mode, "
        f"up to {result['max_in_flight']} in flight at once."
    )


if __name__ == "__main__":
    asyncio.run(main())
