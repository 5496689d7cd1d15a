"""`imageforge generate`: one storyboard in-process.

It runs one storyboard in-process with live progress and prints a table
per scene; `--json` prints the result document instead. Bad input (out-of-range settings,
an unreadable reference image, an unwritable output folder) gets one error line and exit
code 2 before any work starts, so nothing is half-written.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

__all__ = ["OPTION_NAMES", "UsageError", "backends_from", "describe_validation_error", "fail", "generate"]

#: GenerationSettings / BackendSettings field (dotted when nested) -> the CLI option that sets it, for error lines.
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
    "llm.backend": "--llm",
    "llm.model": "--llm-model",
    "llm.base_url": "--llm-base-url",
    "generator": "--generator",
    "generator.backend": "--generator",
    "generator.model": "--generator-model",
    "generator.steps": "--steps",
    "generator.guidance_scale": "--guidance",
    "generator.strength": "--strength",
    "generator.ip_adapter": "--ip-adapter",
    "scoring.scorers": "--scorers",
    "scoring.consistency": "--consistency",
    "device": "--device",
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
        field = ".".join(str(part) for part in item["loc"])
        name = OPTION_NAMES.get(field) or OPTION_NAMES.get(str(item["loc"][0]) if item["loc"] else "", field)
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
    resolution: Annotated[
        int | None, typer.Option("--resolution", help="Long edge in pixels (default: the model's native area).")
    ] = None,
    llm: Annotated[str | None, typer.Option("--llm", help="auto, heuristic or openai.")] = None,
    llm_model: Annotated[str | None, typer.Option("--llm-model", help="Chat model name.")] = None,
    llm_base_url: Annotated[str | None, typer.Option("--llm-base-url", help="OpenAI-compatible endpoint.")] = None,
    generator: Annotated[str | None, typer.Option("--generator", help="auto, sketch, diffusers or openai.")] = None,
    generator_model: Annotated[str | None, typer.Option("--generator-model", help="Hub id or local path.")] = None,
    scorers: Annotated[str | None, typer.Option("--scorers", help="auto, offline, or a comma-separated list.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, mps.")] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Diffusers: denoising steps (model default if unset).")
    ] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", help="Diffusers: guidance scale (model default if unset).")
    ] = None,
    strength: Annotated[
        float | None, typer.Option("--strength", help="Diffusers: image-to-image strength with a reference.")
    ] = None,
    ip_adapter: Annotated[
        str | None, typer.Option("--ip-adapter", help="Diffusers: IP-Adapter 'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS'.")
    ] = None,
    cpu_offload: Annotated[
        bool | None, typer.Option("--cpu-offload/--no-cpu-offload", help="Diffusers: keep idle sub-models on the CPU.")
    ] = None,
    attention_slicing: Annotated[
        bool | None, typer.Option("--attention-slicing/--no-attention-slicing", help="Diffusers: lower peak memory.")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Generation cache folder (default OUT/cache).")
    ] = None,
    pickscore_model: Annotated[
        str | None, typer.Option("--pickscore-model", help="PickScore model id or path.")
    ] = None,
    clip_model: Annotated[
        str | None, typer.Option("--clip-model", help="CLIP for CLIP-score, aesthetic and consistency.")
    ] = None,
    vqa_model: Annotated[str | None, typer.Option("--vqa-model", help="Vision-language model for VQAScore.")] = None,
    consistency: Annotated[str | None, typer.Option("--consistency", help="auto, clip, dinov2 or histogram.")] = None,
    consistency_model: Annotated[
        str | None, typer.Option("--consistency-model", help="Model for the consistency scorer.")
    ] = None,
) -> None:
    """Plan, enhance, generate, score and chain a storyboard; write its trace."""

    from imageforge.graph.context import Context, GenerationSettings
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
        flags = {
            "llm": {"backend": llm, "model": llm_model, "base_url": llm_base_url},
            "generator": {
                "backend": generator,
                "model": generator_model,
                "steps": steps,
                "guidance_scale": guidance,
                "strength": strength,
                "ip_adapter": ip_adapter,
                "cpu_offload": cpu_offload,
                "attention_slicing": attention_slicing,
                "cache_dir": None if cache_dir is None else str(cache_dir),
            },
            "scoring": {
                "scorers": scorers,
                "pickscore_model": pickscore_model,
                "clip_model": clip_model,
                "vqa_model": vqa_model,
                "consistency": consistency,
                "consistency_model": consistency_model,
            },
            "device": device,
        }
        backends = backends_from(flags, default_cache_dir=out / "cache")
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
        services = build_services(backends, api_key=_openai_api_key())
    except (ValueError, LookupError) as exc:  # a backend that cannot be built as asked (no endpoint, no weights)
        raise fail(str(exc)) from None
    for note in services.notes:
        console.print(f"[dim]{note}[/]", highlight=False, soft_wrap=True)

    context = Context(settings=settings, backends=backends, trace_root=str(trace_root), services=services)
    summary = asyncio.run(_run_with_progress(request, context, console))

    from imageforge.api.cli.render import render_summary
    from imageforge.api.core.config import Settings

    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    else:
        render_summary(console, summary, trace_root, Settings().llm_prices)
    if summary.status != "completed":
        raise typer.Exit(1)


async def _run_with_progress(request: Any, context: Any, console: Console):
    from imageforge.api.cli.render import LiveProgress
    from imageforge.graph.run import run_storyboard

    with LiveProgress(console, context.settings) as progress:
        return await run_storyboard(request, context, on_event=progress.handle)


def backends_from(flags: dict[str, Any], *, default_cache_dir: Path) -> Any:
    """The environment's backends (the same settings tree the service reads: IMAGEFORGE_LLM__BASE_URL,
    IMAGEFORGE_GENERATOR__MODEL, ...) with the flags the user gave on top; None means "not given"."""
    from imageforge.api.core.config import Settings
    from imageforge.graph.context import BackendSettings

    def given(values: Any) -> Any:
        if isinstance(values, dict):
            return {key: given(value) for key, value in values.items() if value is not None}
        return values

    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        merged = dict(base)
        for key, value in top.items():
            merged[key] = merge(base[key], value) if isinstance(value, dict) and key in base else value
        return merged

    environment = Settings().default_backends().model_dump()
    if environment["generator"]["cache_dir"] is not None and "IMAGEFORGE_GENERATOR__CACHE_DIR" not in os.environ:
        environment["generator"]["cache_dir"] = str(default_cache_dir)  # the CLI's cache lives beside its output
    return BackendSettings.model_validate(merge(environment, given(flags)))


def _openai_api_key() -> str | None:
    from imageforge.api.core.config import Settings

    key = Settings().openai_api_key
    return key.get_secret_value() if key is not None else None
