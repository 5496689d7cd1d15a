"""The `imageforge` command line.

`imageforge generate` runs one storyboard in-process with live progress and prints a table
per scene; `--json` prints the result document instead. Bad input (out-of-range settings,
an unreadable reference image, an unwritable output folder) gets one error line and exit
code 2 before any work starts, so nothing is half-written.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

app = typer.Typer(
    name="imageforge",
    help="Turn a concept into a storyboard of scored reference images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: GenerationSettings / BackendSettings field -> the CLI option that sets it, for error lines.
OPTION_NAMES = {
    "num_variations": "--variations",
    "max_enhancement_iterations": "--max-iterations",
    "approval_threshold": "--approval-threshold",
    "quality_threshold": "--quality-threshold",
    "consistency_threshold": "--consistency-threshold",
    "max_retries": "--max-retries",
    "seed": "--seed",
    "aspect_ratio": "--aspect-ratio",
    "resolution": "--resolution",
    "llm": "--llm",
    "llm_model": "--llm-model",
    "llm_base_url": "--llm-base-url",
    "generator": "--generator",
    "generator_model": "--generator-model",
    "scorers": "--scorers",
    "device": "--device",
    "steps": "--steps",
    "guidance_scale": "--guidance",
    "strength": "--strength",
    "consistency": "--consistency",
    "target_duration_s": "--duration",
    "num_scenes": "--scenes",
    "scenes": "--scene",
    "concept": "CONCEPT",
}


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = OPTION_NAMES.get(field, field)
        value = item.get("input")
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        parts.append(f"{name}: {item['msg']}{shown}".strip(": "))
    return "; ".join(parts)


def new_generation_id() -> str:
    """Sortable by time, unique by chance: 20261121-052815-3f9a1c2b."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"


def check_output_dir(out: Path) -> Path:
    """The trace root under `out`, created and proven writable before any work."""
    root = out / "reference_image_traces"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out: cannot write to {out} ({exc.strerror or exc})") from exc
    return root


def check_reference(path: Path) -> str:
    from imageforge.tools.storage import InvalidImageError, load_image

    try:
        load_image(path)
    except InvalidImageError as exc:
        raise UsageError(f"--reference: {exc}") from exc
    return str(path.resolve())


@app.callback()
def _root() -> None:
    """Turn a concept into a storyboard of scored reference images."""


from imageforge.api.cli_models import models_app
from imageforge.api.cli_service import register as register_service_commands

app.add_typer(models_app, name="models")
register_service_commands(app)  # serve, token, users create


@app.command()
def generate(
    concept: Annotated[str, typer.Argument(help="What the storyboard is about.")],
    duration: Annotated[
        float | None, typer.Option("--duration", help="Target video length in seconds; sets the scene count.")
    ] = None,
    scenes: Annotated[int | None, typer.Option("--scenes", help="Number of scenes (overrides --duration).")] = None,
    scene: Annotated[
        list[str] | None, typer.Option("--scene", help="An explicit scene prompt; repeat for each scene.")
    ] = None,
    variations: Annotated[int, typer.Option("--variations", help="Images per attempt, 1-16.")] = 4,
    max_iterations: Annotated[int, typer.Option("--max-iterations", help="Critique-loop cap, 1-10.")] = 4,
    approval_threshold: Annotated[
        float, typer.Option("--approval-threshold", help="Prompt score that ends the loop.")
    ] = 85.0,
    quality_threshold: Annotated[
        float, typer.Option("--quality-threshold", help="Minimum weighted image score.")
    ] = 30.0,
    consistency_threshold: Annotated[
        float, typer.Option("--consistency-threshold", help="Minimum similarity to the reference; 0 disables.")
    ] = 30.0,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Extra attempts with the next reference, 0-5.")] = 2,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail a scene whose attempts all miss instead of keeping the best.")
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Base seed; the same seed reproduces the run.")] = None,
    reference: Annotated[Path | None, typer.Option("--reference", help="An image used as scene 1's reference.")] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Output folder; traces go to OUT/reference_image_traces/<id>/.")
    ] = Path("output"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the result document on stdout.")] = False,
    aspect_ratio: Annotated[str, typer.Option("--aspect-ratio", help="square, 16:9, 4:5 or 21:9.")] = "square",
    resolution: Annotated[int, typer.Option("--resolution", help="Long edge in pixels.")] = 512,
    llm: Annotated[str, typer.Option("--llm", envvar="IMAGEFORGE_LLM", help="auto, heuristic or openai.")] = "auto",
    llm_model: Annotated[
        str, typer.Option("--llm-model", envvar="IMAGEFORGE_LLM_MODEL", help="Chat model name.")
    ] = "gpt-4o-mini",
    llm_base_url: Annotated[
        str | None, typer.Option("--llm-base-url", envvar="IMAGEFORGE_LLM_BASE_URL", help="OpenAI-compatible endpoint.")
    ] = None,
    generator: Annotated[
        str, typer.Option("--generator", envvar="IMAGEFORGE_GENERATOR", help="auto, sketch, diffusers or openai.")
    ] = "auto",
    generator_model: Annotated[
        str | None, typer.Option("--generator-model", envvar="IMAGEFORGE_GENERATOR_MODEL", help="Hub id or local path.")
    ] = None,
    scorers: Annotated[
        str, typer.Option("--scorers", envvar="IMAGEFORGE_SCORERS", help="auto, offline, or a comma-separated list.")
    ] = "auto",
    device: Annotated[str, typer.Option("--device", envvar="IMAGEFORGE_DEVICE", help="auto, cpu, cuda, mps.")] = "auto",
    steps: Annotated[
        int | None, typer.Option("--steps", help="Diffusers: denoising steps (model default if unset).")
    ] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", help="Diffusers: guidance scale (model default if unset).")
    ] = None,
    strength: Annotated[
        float, typer.Option("--strength", help="Diffusers: image-to-image strength with a reference.")
    ] = 0.6,
    ip_adapter: Annotated[
        str | None,
        typer.Option(
            "--ip-adapter",
            envvar="IMAGEFORGE_IP_ADAPTER",
            help="Diffusers: IP-Adapter 'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS'.",
        ),
    ] = None,
    cpu_offload: Annotated[
        bool, typer.Option("--cpu-offload", help="Diffusers: keep idle sub-models on the CPU.")
    ] = False,
    attention_slicing: Annotated[
        bool, typer.Option("--attention-slicing", help="Diffusers: lower peak memory.")
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", envvar="IMAGEFORGE_CACHE_DIR", help="Generation cache folder (default OUT/cache)."),
    ] = None,
    pickscore_model: Annotated[
        str | None,
        typer.Option("--pickscore-model", envvar="IMAGEFORGE_PICKSCORE_MODEL", help="PickScore model id or path."),
    ] = None,
    clip_model: Annotated[
        str | None,
        typer.Option(
            "--clip-model", envvar="IMAGEFORGE_CLIP_MODEL", help="CLIP for CLIP-score, aesthetic and consistency."
        ),
    ] = None,
    vqa_model: Annotated[
        str | None,
        typer.Option("--vqa-model", envvar="IMAGEFORGE_VQA_MODEL", help="Vision-language model for VQAScore."),
    ] = None,
    consistency: Annotated[
        str, typer.Option("--consistency", envvar="IMAGEFORGE_CONSISTENCY", help="auto, clip, dinov2 or histogram.")
    ] = "auto",
    consistency_model: Annotated[
        str | None,
        typer.Option(
            "--consistency-model", envvar="IMAGEFORGE_CONSISTENCY_MODEL", help="Model for the consistency scorer."
        ),
    ] = None,
) -> None:
    """Plan, enhance, generate, score and chain a storyboard; write its trace."""
    import os

    from imageforge.graph.context import BackendSettings, Context, GenerationSettings
    from imageforge.graph.run import StoryboardRequest

    console = Console(stderr=as_json)
    try:
        settings = GenerationSettings(
            num_variations=variations,
            max_enhancement_iterations=max_iterations,
            approval_threshold=approval_threshold,
            quality_threshold=quality_threshold,
            consistency_threshold=consistency_threshold,
            max_retries=max_retries,
            strict=strict,
            seed=seed,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
        )
        backends = BackendSettings(
            llm=llm,
            llm_model=llm_model,
            llm_base_url=llm_base_url,
            generator=generator,
            generator_model=generator_model,
            scorers=tuple(s.strip() for s in scorers.split(",") if s.strip()),
            device=device,
            steps=steps,
            guidance_scale=guidance,
            strength=strength,
            ip_adapter=ip_adapter,
            cpu_offload=cpu_offload,
            attention_slicing=attention_slicing,
            cache_dir=str(cache_dir if cache_dir is not None else out / "cache"),
            pickscore_model=pickscore_model,
            clip_model=clip_model,
            vqa_model=vqa_model,
            consistency=consistency,
            consistency_model=consistency_model,
        )
        request = StoryboardRequest(
            generation_id=new_generation_id(),
            concept=concept,
            target_duration_s=duration,
            num_scenes=scenes,
            scenes=scene or None,
        )
        if reference is not None:
            request = request.model_copy(update={"reference_path": check_reference(reference)})
        trace_root = check_output_dir(out)
    except ValidationError as exc:
        raise fail(describe_validation_error(exc)) from None
    except UsageError as exc:
        raise fail(str(exc)) from None

    from imageforge.graph.services import build_services

    try:
        services = build_services(backends, api_key=os.environ.get("OPENAI_API_KEY"))
    except (ValueError, LookupError) as exc:  # a backend that cannot be built as asked (no endpoint, no weights)
        raise fail(str(exc)) from None
    for note in services.notes:
        console.print(f"[dim]{note}[/]", highlight=False, soft_wrap=True)

    context = Context(settings=settings, backends=backends, trace_root=str(trace_root), services=services)
    summary = asyncio.run(_run_with_progress(request, context, console))

    from imageforge.api.cli_render import render_summary

    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    else:
        render_summary(console, summary, trace_root)
    if summary.status != "completed":
        raise typer.Exit(1)


async def _run_with_progress(request: Any, context: Any, console: Console):
    from imageforge.api.cli_render import LiveProgress
    from imageforge.graph.run import run_storyboard

    with LiveProgress(console, context.settings) as progress:
        return await run_storyboard(request, context, on_event=progress.handle)


def main() -> None:  # pragma: no cover - console entry point convenience
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
