"""Rich rendering for the CLI: live progress bars from graph events and the result tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from imageforge.agents.usage import ModelPrice, llm_cost_usd
from imageforge.graph.context import GenerationSettings
from imageforge.traces.schemas import RunSummary, llm_events

SLOTS = ("pickscore", "clip", "vqa", "aesthetic")


class LiveProgress:
    """Four bars fed by the same events the API streams: scenes, enhancement iterations,
    variations generated and variations scored."""

    def __init__(self, console: Console, settings: GenerationSettings) -> None:
        self.settings = settings
        self.progress = Progress(
            TextColumn("[bold]{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}", style="dim"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Self:
        self.progress.start()
        add = self.progress.add_task
        self.tasks = {
            "scenes": add("Scenes", total=None, note="planning"),
            "iterations": add("Enhancement iterations", total=None, note=""),
            "variations": add("Variations generated", total=None, note=""),
            "scoring": add("Variations scored", total=None, note=""),
        }
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _advance(self, name: str, amount: float = 1, **fields: Any) -> None:
        self.progress.update(self.tasks[name], advance=amount, **fields)

    def handle(self, event: dict[str, Any]) -> None:
        kind, data, scene = event["type"], event.get("data", {}), event.get("scene")
        update = self.progress.update
        if kind == "plan_ready":
            count = len(data.get("scenes", []))
            update(self.tasks["scenes"], total=count, note=f"{count} planned")
            update(self.tasks["iterations"], total=count * self.settings.max_enhancement_iterations)
            update(self.tasks["variations"], total=count * self.settings.num_variations)
            update(self.tasks["scoring"], total=count * self.settings.num_variations)
        elif kind == "enhance_iteration":
            self._advance("iterations", note=f"scene {scene}: {data.get('overall', 0):.1f}")
        elif kind == "enhance_done":
            # An approved scene stops early: shrink the total so the bar can finish.
            skipped = self.settings.max_enhancement_iterations - int(data.get("iterations", 0))
            task = self.progress.tasks[self.tasks["iterations"]]
            if skipped and task.total is not None:
                update(self.tasks["iterations"], total=task.total - skipped)
        elif kind == "attempt_started" and data.get("attempt", 1) > 1:
            for name in ("variations", "scoring"):
                task = self.progress.tasks[self.tasks[name]]
                update(self.tasks[name], total=(task.total or 0) + int(data.get("variations", 0)))
        elif kind == "variations_generated":
            self._advance("variations", int(data.get("count", 0)), note=f"scene {scene}")
        elif kind == "variations_scored":
            best = max(data.get("overalls", [0]))
            self._advance("scoring", len(data.get("overalls", [])), note=f"scene {scene}: best {best:.1f}")
        elif kind == "scene_done":
            self._advance("scenes", note=f"scene {scene} {data.get('result', {}).get('status', '')}")
        elif kind == "warning":
            self.progress.console.print(f"[yellow]warning:[/] {event.get('message', '')}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_summary(
    console: Console, summary: RunSummary, trace_root: Path, prices: dict[str, ModelPrice] | None = None
) -> None:
    """One row per scene, then the scorers that ran, the LLM's measured usage and cost, the warnings
    and where the trace is."""
    folder = trace_root / summary.generation_id
    table = Table(title=f"Storyboard {summary.generation_id}: {summary.status}", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("Scene", "Winner", "Pick", "CLIP", "VQA", "Aesth", "Overall", "Tries", "Warn"):
        table.add_column(
            column, justify="left" if column.startswith("Winner") else "right", no_wrap=True, min_width=len(column)
        )
    for scene in summary.scenes:
        winner = scene.winner
        components = winner.components if winner else {}
        path = Path(scene.winner_path).name if scene.winner_path else "-"
        table.add_row(
            str(scene.scene_number),
            str(path),
            *(_fmt(components.get(slot)) for slot in SLOTS),
            _fmt(winner.overall if winner else None),
            f"{scene.winner_attempt or '-'}/{len(scene.attempts)}",
            str(len(scene.warnings)),
        )
    console.print(table)
    if summary.scenes:
        report = summary.scenes[0].ensemble
        served = ", ".join(f"{i.slot}: {i.name}{' (stand-in)' if i.stand_in else ''}" for i in report.scorers)
        weights = ", ".join(f"{k} {v:.2f}" for k, v in report.effective_weights.items())
        console.print(f"Scorers: {served}. Effective weights: {weights}.", highlight=False, soft_wrap=True)
        for slot, reason in report.missing.items():
            console.print(f"[dim]Left out {slot}: {reason}[/]", highlight=False, soft_wrap=True)
    console.print("[dim]Winner: the file in scene_<k>/. Tries: winning attempt / attempts made.[/]")
    usage = summary.llm_usage
    if usage.requests:
        cost, unpriced = llm_cost_usd(llm_events(summary), prices or {})
        priced = f"${cost:.4f} measured" + (f" (not priced: {', '.join(unpriced)})" if unpriced else "")
        console.print(
            f"LLM: {usage.requests} requests, {usage.prompt_tokens} prompt + {usage.completion_tokens} completion "
            f"tokens, {usage.latency_s:.1f} s; {priced}.",
            highlight=False,
            soft_wrap=True,
        )
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if summary.error:
        console.print(f"[bold red]error:[/] {summary.error}", highlight=False, soft_wrap=True)
    console.print(f"Trace: {folder}", highlight=False, soft_wrap=True)
