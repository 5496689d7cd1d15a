"""`imageforge eval`: raw prompt vs best-of-N vs enhanced vs the full pipeline, on a prompt set.

Everything that decides the figures is checked and saved in eval/<id>/config.json before any
image is generated; bad input gets one error line and exit code 2. A run that stops (killed,
Ctrl-C) continues with `imageforge eval --resume <id>`, or by running the same command with
the same --id again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

__all__ = ["eval_command"]


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def eval_command(
    prompts: Annotated[
        Path | None,
        typer.Argument(
            help="Prompt file: .txt (one per line), .jsonl or .csv with `prompt` and optional `category`. "
            "Default: 50 built-in PartiPrompts."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first LIMIT prompts.")] = None,
    eval_id: Annotated[
        str | None, typer.Option("--id", help="Name of the run's folder under OUT (default: new).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue the run OUT/<id> with its saved settings.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder that holds one folder per evaluation.")] = Path("eval"),
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="Judges, comma-separated (vqascore,pickscore,clip-score,...); "
            "default: every model scorer on disk, else the offline stand-in.",
        ),
    ] = None,
    hold_out: Annotated[
        str | None, typer.Option("--hold-out", help="Scorers kept out of best-of-N selection, comma-separated.")
    ] = None,
    variations: Annotated[int, typer.Option("--variations", help="N for the best-of-N arms, 1-16.")] = 4,
    max_iterations: Annotated[int, typer.Option("--max-iterations", help="Critique-loop cap, 1-10.")] = 4,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Full arm: retries after a failed validation.")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Every prompt's base seed derives from it.")] = 0,
    resolution: Annotated[int | None, typer.Option("--resolution", help="Long edge in pixels.")] = None,
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples per interval.")] = 2000,
    llm: Annotated[str | None, typer.Option("--llm", help="auto, heuristic or openai.")] = None,
    llm_model: Annotated[str | None, typer.Option("--llm-model", help="Chat model name.")] = None,
    llm_base_url: Annotated[str | None, typer.Option("--llm-base-url", help="OpenAI-compatible endpoint.")] = None,
    generator: Annotated[str | None, typer.Option("--generator", help="auto, sketch, diffusers or openai.")] = None,
    generator_model: Annotated[str | None, typer.Option("--generator-model", help="Hub id or local path.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Diffusers: denoising steps.")] = None,
    scorers: Annotated[
        str | None, typer.Option("--scorers", help="Selection scorers: auto, offline, or a comma-separated list.")
    ] = None,
    pickscore_model: Annotated[str | None, typer.Option("--pickscore-model", help="PickScore id or path.")] = None,
    clip_model: Annotated[str | None, typer.Option("--clip-model", help="CLIP for CLIP-score and aesthetic.")] = None,
    vqa_model: Annotated[str | None, typer.Option("--vqa-model", help="Vision-language model for VQAScore.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, mps.")] = None,
) -> None:
    """Compare raw, raw best-of-N, enhanced and full-pipeline images on a prompt set, with intervals."""
    from imageforge.api.cli.generate import UsageError, backends_from, describe_validation_error, fail
    from imageforge.api.services.evaluation.store import load_config

    console = Console()
    try:
        if resume is not None:
            if prompts is not None or eval_id is not None:
                raise UsageError("--resume continues a saved run with its own prompts and id; drop PROMPTS and --id")
            folder = out / resume
            config = load_config(folder)
        else:
            flags = {
                "llm": {"backend": llm, "model": llm_model, "base_url": llm_base_url},
                "generator": {"backend": generator, "model": generator_model, "steps": steps},
                "scoring": {
                    "scorers": scorers,
                    "pickscore_model": pickscore_model,
                    "clip_model": clip_model,
                    "vqa_model": vqa_model,
                },
                "device": device,
            }
            config = _new_config(
                prompts,
                limit=limit,
                eval_id=eval_id,
                seed=seed,
                resamples=resamples,
                settings={
                    "num_variations": variations,
                    "max_enhancement_iterations": max_iterations,
                    "max_retries": max_retries,
                    "resolution": resolution,
                },
                backends=backends_from(flags, default_cache_dir=out / "cache"),
                judges=_split(judge),
                hold_out=_split(hold_out),
            )
            folder = out / config.eval_id
    except ValidationError as exc:
        raise fail(describe_validation_error(exc)) from None
    except (UsageError, ValueError) as exc:
        raise fail(str(exc)) from None

    services, judges, config = _build(config, console, fail)
    _check_folder(folder, config, fail)

    try:
        summary = asyncio.run(_run_with_progress(config, folder, services, judges, console))
    except KeyboardInterrupt:
        console.print(f"Stopped. Continue with: imageforge eval --resume {config.eval_id} --out {out}")
        raise typer.Exit(130) from None
    from rich.markdown import Markdown

    console.print(Markdown((folder / "report.md").read_text(encoding="utf-8")))
    console.print(f"Report: {folder / 'report.html'}  (summary.json, report.md, results.jsonl beside it)")
    if summary["failures"]:
        raise typer.Exit(1)


def _new_config(
    prompts: Path | None,
    *,
    limit: int | None,
    eval_id: str | None,
    seed: int,
    resamples: int,
    settings: dict[str, Any],
    backends: Any,
    judges: list[str],
    hold_out: list[str],
) -> Any:
    from imageforge.api.cli.generate import new_generation_id
    from imageforge.api.services.evaluation.judges import plan_scorers
    from imageforge.api.services.evaluation.prompts import BUILTIN_NAME, builtin_prompts, load_prompts
    from imageforge.api.services.evaluation.store import EvalConfig
    from imageforge.graph.context import GenerationSettings

    items = builtin_prompts() if prompts is None else load_prompts(prompts)
    if limit is not None:
        items = items[:limit]
    generation = GenerationSettings(**{k: v for k, v in settings.items() if v is not None})
    plan = plan_scorers(backends.scoring, judges, hold_out)
    # No generation cache: arms share seeds, so cached images would make the later arms look free.
    selecting = backends.model_copy(
        update={
            "scoring": backends.scoring.model_copy(update={"scorers": plan.selection}),
            "generator": backends.generator.model_copy(update={"cache_dir": None}),
        }
    )
    return EvalConfig(
        eval_id=eval_id or new_generation_id(),
        prompt_source=BUILTIN_NAME if prompts is None else str(prompts),
        prompts=items,
        seed=seed,
        settings=generation,
        backends=selecting,
        selection=list(plan.selection),
        judges=list(plan.judges),
        held_out=list(plan.held_out),
        resamples=resamples,
    )


def _build(config: Any, console: Console, fail: Any) -> tuple[Any, Any, Any]:
    """The pipeline's backends and the judges, and the config with what actually served."""
    from imageforge.api.cli.generate import _openai_api_key
    from imageforge.api.services.evaluation.judges import build_judges
    from imageforge.graph.services import build_services

    try:
        services = build_services(config.backends, api_key=_openai_api_key())
        judges = build_judges(config.judges, config.backends.scoring, config.backends.device)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    for note in services.notes:
        console.print(f"[dim]{note}[/]", highlight=False, soft_wrap=True)
    console.print(
        f"[dim]Selection: {', '.join(config.selection)}; judges: {', '.join(config.judges)}"
        + (f"; held out: {', '.join(config.held_out)}" if config.held_out else "")
        + ".[/]",
        highlight=False,
    )
    described = services.describe()
    resolved = {
        "generator": services.generator.name,
        "generator_model": services.generator.model,
        "llm": str(described["llm"]),
    }
    if config.resolved and config.resolved != resolved:
        console.print(f"[yellow]warning:[/] this run was started with {config.resolved}, now {resolved}")
        resolved = config.resolved
    return services, judges, config.model_copy(update={"resolved": resolved})


def _check_folder(folder: Path, config: Any, fail: Any) -> None:
    """A new folder gets the config; an existing one must hold the same run (then it resumes)."""
    from imageforge.api.services.evaluation.store import config_path, load_config, save_config

    if config_path(folder).is_file():
        try:
            saved = load_config(folder)
        except ValueError as exc:
            raise fail(str(exc)) from None
        if not saved.same_run(config):
            raise fail(
                f"{folder} holds an evaluation with other settings; continue it with --resume {saved.eval_id} "
                "or choose another --id"
            )
        return
    try:
        save_config(folder, config)
    except OSError as exc:
        raise fail(f"--out: cannot write to {folder} ({exc.strerror or exc})") from None


async def _run_with_progress(config: Any, folder: Path, services: Any, judges: Any, console: Console) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from imageforge.api.services.evaluation.runner import pending, run_evaluation
    from imageforge.api.services.evaluation.store import ARMS, ResultsLog

    todo = pending(config, ResultsLog(folder).read())
    total = len(config.prompts) * len(ARMS)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"eval {config.eval_id}", total=total, completed=total - len(todo), current="")

        def on_progress(record: Any, label: str) -> None:
            if record is None:
                progress.update(task, current=label)
                return
            if record.status != "ok":
                progress.console.print(f"[red]{label} failed:[/] {record.error}", highlight=False)
            progress.advance(task)

        return await run_evaluation(config, folder, services=services, judges=judges, on_progress=on_progress)
