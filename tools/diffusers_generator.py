"""Image generation with a diffusers text-to-image pipeline, loaded once per process.

``DiffusersGenerator`` is built from pipelines that are already loaded (as a diffusers
pipeline is built from its components); ``load_diffusers_generator`` finds the weights on
disk, loads them through ``AutoPipelineForText2Image`` via the process-wide model cache,
derives the matching image-to-image pipeline from the same components and applies the
memory options. Nothing here downloads: a model that is not on disk is an error that says
how to fetch it (``imageforge models pull``).

Each seed gets its own ``torch.Generator`` (on the CPU, so the starting noise is the same on
every device), and all seeds of a call run as one batch; an image therefore does not depend
on which other seeds shared its batch. The starting noise is bitwise identical either way;
the denoised pixels agree to float rounding (batched convolutions sum in a different order,
so a pixel may differ by one level in 255).

References (the graph passes the attempt's chosen reference first, then the storyboard's
anchor: the user's image or scene 1's winner) condition the images by this rule:

* one reference: image-to-image from it; with an IP-Adapter loaded, text-to-image conditioned
  on it through the adapter instead;
* a reference and an anchor, with an IP-Adapter: image-to-image from the reference (its
  layout) with the adapter conditioned on the anchor (the storyboard's look), so that long
  storyboards do not drift from the anchor however far each scene moves from the last;
* a reference and an anchor, without an adapter (SD 2.x / SD-Turbo, for which none exists):
  image-to-image from the reference blended with the anchor (``ANCHOR_BLEND``, 25 % anchor):
  the re-noised init keeps the anchor's palette and broad layout, the denoising takes the
  detail from the reference and the prompt.

Each image's metadata says which (``anchor``: "ip_adapter", "init_blend" or None).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image

from imageforge.tools.base import GenerationError
from imageforge.tools.batching import AdaptiveBatch
from imageforge.tools.devices import (
    default_dtype,
    device_lock,
    dtype_name,
    free_device_memory,
    is_out_of_memory,
    resolve_device,
)
from imageforge.tools.generation_cache import GenerationCache, lookup_seeds, references_digest
from imageforge.tools.schemas import GenerationOutput, ImageSize

if TYPE_CHECKING:
    import torch

__all__ = [
    "ANCHOR_BLEND",
    "DiffusersGenerator",
    "LoadedPipelines",
    "SamplingDefaults",
    "check_ip_adapter_fits",
    "effective_img2img_strength",
    "ip_adapter_download_hint",
    "ip_adapter_width",
    "load_diffusers_generator",
    "native_size",
    "round_size",
    "sampling_defaults",
]

logger = logging.getLogger(__name__)

Mode = Literal["text2img", "img2img", "ip_adapter"]
AnchorUse = Literal["ip_adapter", "init_blend"]

ANCHOR_BLEND = 0.25
"""Share of the anchor in the image-to-image init when no IP-Adapter carries it (see the
module docstring): enough to pull palette and layout back towards the storyboard's look,
little enough that the chosen reference still decides the composition."""


@dataclass(frozen=True)
class SamplingDefaults:
    """Steps and guidance a model family is meant to run with."""

    steps: int
    guidance_scale: float
    prefer_bf16: bool = False
    uses_cfg: bool = True
    """Whether guidance_scale > 1 means classifier-free guidance (and so a negative prompt
    matters). FLUX's guidance is distilled into the model and takes no negative prompt."""


def sampling_defaults(model: str, pipeline_class: str) -> SamplingDefaults:
    """The family defaults for a model, from its name and its pipeline class.

    Turbo models are distilled for 1-4 steps without guidance (SD-Turbo's and SDXL-Turbo's
    model cards use 1 step, guidance 0); FLUX-schnell 4 steps, FLUX-dev 28 at guidance 3.5;
    SD3 28 at 7.0; SDXL 30 at 7.0; Stable Diffusion 1.x/2.x 25 at 7.5.
    """
    name = model.lower()
    if "Flux" in pipeline_class:
        if "schnell" in name:
            return SamplingDefaults(steps=4, guidance_scale=0.0, prefer_bf16=True, uses_cfg=False)
        return SamplingDefaults(steps=28, guidance_scale=3.5, prefer_bf16=True, uses_cfg=False)
    is_sd3 = "StableDiffusion3" in pipeline_class
    if "turbo" in name:
        return SamplingDefaults(steps=4 if is_sd3 else 1, guidance_scale=0.0, prefer_bf16=is_sd3)
    if is_sd3:
        return SamplingDefaults(steps=28, guidance_scale=7.0, prefer_bf16=True)
    if "StableDiffusionXL" in pipeline_class:
        return SamplingDefaults(steps=30, guidance_scale=7.0)
    return SamplingDefaults(steps=25, guidance_scale=7.5)


def native_size(model: str, pipeline_class: str) -> tuple[int, str] | None:
    """(native edge, family) for a known model family, from its name and pipeline class: the
    square it was trained at, whose area ``tools.sizes.native_frame`` keeps at every aspect
    ratio. None for a model this table does not know (the pipeline's own default size,
    ``sample_size * vae_scale_factor``, is used then).

    Stable Diffusion 1.x, 2.x-base and SD-Turbo (a distilled 2.1): 512. SDXL-Turbo: 512 as
    well (its model card and diffusers' SDXL Turbo page: "trained to generate images of size
    512x512"), although it is an SDXL. SD 2.x (768-v): 768. SDXL, SD3/3.5 and FLUX: 1024.
    """
    name = model.lower()
    if "Flux" in pipeline_class:
        return 1024, "FLUX"
    if "StableDiffusion3" in pipeline_class:
        return 1024, "Stable Diffusion 3"
    if "StableDiffusionXL" in pipeline_class:
        return (512, "SDXL-Turbo") if "turbo" in name else (1024, "SDXL")
    if "StableDiffusion" in pipeline_class:
        if "turbo" in name:
            return 512, "SD-Turbo"
        if "stable-diffusion-2" in name:
            return (512, "Stable Diffusion 2.x-base") if "base" in name else (768, "Stable Diffusion 2.x (768-v)")
        if "stable-diffusion-v1" in name or "stable-diffusion-1" in name:
            return 512, "Stable Diffusion 1.x"
    return None


def _default_edge(pipeline: Any) -> int | None:
    """The size the pipeline makes when none is given: ``default_sample_size`` (or the UNet's
    ``sample_size``) times the VAE's downscale, as diffusers computes it."""
    sample = getattr(pipeline, "default_sample_size", None)
    if sample is None:
        unet = getattr(pipeline, "unet", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", None)
    factor = getattr(pipeline, "vae_scale_factor", None)
    if isinstance(sample, int) and isinstance(factor, int):
        return sample * factor
    return None


def round_size(size: ImageSize, multiple: int) -> ImageSize:
    """``size`` with both edges rounded to the nearest multiple of ``multiple`` (at least one)."""
    if multiple < 1:
        raise ValueError(f"`multiple` must be a positive integer, got {multiple!r}.")

    def edge(value: int) -> int:
        return max(multiple, math.floor(value / multiple + 0.5) * multiple)

    return ImageSize(width=edge(size.width), height=edge(size.height))


def effective_img2img_strength(scheduler: Any, steps: int, strength: float) -> float | None:
    """The strength image-to-image really applies: how far along the noise schedule the
    reference is re-noised before denoising starts, 0 (untouched) to 1 (pure noise).

    diffusers' ``get_timesteps`` keeps the last ``int(steps * strength)`` of the scheduler's
    ``steps`` timesteps (SD3 and FLUX, flow matching: ``steps * strength`` unrounded) and
    starts from the first kept one, so the applied strength is that timestep's place in the
    training schedule: ``(t + 1) / num_train_timesteps`` for the discrete schedulers (t runs
    0..999), ``t / num_train_timesteps`` (the sigma) for flow matching. With SD-Turbo's
    trailing Euler schedule, 2 steps at 0.6 keep 1 step that starts at t=499: 0.5, not 0.6.
    The scheduler is rebuilt from its config, so the shared one's state is not touched. None
    when the schedule cannot be computed ahead of the call (FLUX's resolution-dependent shift).
    """
    flow_matching = "FlowMatch" in type(scheduler).__name__
    try:
        fresh = type(scheduler).from_config(scheduler.config)
        fresh.set_timesteps(steps)
        timesteps = fresh.timesteps
        train_steps = int(fresh.config.num_train_timesteps)
    except (TypeError, ValueError, AttributeError):
        return None
    kept = min(steps * strength, steps) if flow_matching else min(int(steps * strength), steps)
    start = int(max(steps - kept, 0)) * int(getattr(fresh, "order", 1))
    if start >= len(timesteps):
        return 0.0
    first = float(timesteps[start])
    applied = first / train_steps if flow_matching else (first + 1) / train_steps
    return round(min(1.0, max(0.0, applied)), 4)


def _size_multiple(pipeline: Any) -> int:
    """What both edges must divide by: the "multiple of 8" the Stable Diffusion pipelines check,
    and the VAE's downscale, doubled for transformer pipelines (FLUX, SD3) that pack 2x2
    latent patches (16 for both)."""
    factor = int(getattr(pipeline, "vae_scale_factor", 8))
    if getattr(pipeline, "transformer", None) is not None:
        factor *= 2
    return math.lcm(8, factor)


def _call_parameters(pipeline: Any) -> frozenset[str]:
    return frozenset(inspect.signature(type(pipeline).__call__).parameters)


@dataclass
class LoadedPipelines:
    """What the model cache holds for one model: both pipelines share their components,
    and one lock, because a pipeline's scheduler keeps per-call state."""

    text2img: Any
    img2img: Any | None
    lock: threading.Lock = field(default_factory=threading.Lock)


class DiffusersGenerator:
    """Best-of-N generation with a loaded diffusers pipeline (see the module docstring).

    ``text2img`` is a text-to-image pipeline; ``img2img`` the image-to-image pipeline made
    from the same components (None: references are ignored with a warning). With
    ``ip_adapter_scale`` set, an IP-Adapter is loaded into ``text2img`` and references
    condition it through the adapter instead of image-to-image. ``native`` is (edge, family)
    of the model's training size (``native_size``); by default the pipeline's own default
    size.
    """

    name = "diffusers"

    def __init__(
        self,
        text2img: Any,
        img2img: Any | None = None,
        *,
        model: str,
        device: str,
        steps: int,
        guidance_scale: float,
        img2img_strength: float = 0.6,
        uses_cfg: bool = True,
        ip_adapter_scale: float | None = None,
        cache: GenerationCache | None = None,
        cache_model_id: str | None = None,
        max_batch_size: int | None = None,
        lock: threading.Lock | None = None,
        native: tuple[int, str] | None = None,
    ) -> None:
        if steps < 1:
            raise ValueError(f"`steps` must be >= 1, got {steps!r}.")
        if guidance_scale < 0:
            raise ValueError(f"`guidance_scale` must be >= 0, got {guidance_scale!r}.")
        if not 0 < img2img_strength <= 1:
            raise ValueError(f"`img2img_strength` must be in (0, 1], got {img2img_strength!r}.")
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"`max_batch_size` must be >= 1 or None, got {max_batch_size!r}.")
        self.text2img = text2img
        self.img2img = img2img
        self.model = model
        self.device = device
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.img2img_strength = img2img_strength
        self.uses_cfg = uses_cfg
        self.ip_adapter_scale = ip_adapter_scale
        self.cache = cache
        self.cache_model_id = cache_model_id or model
        self.max_batch_size = max_batch_size
        self._lock = lock or threading.Lock()
        self._batch = AdaptiveBatch(max_batch_size)
        self._strength_by_steps: dict[int, float | None] = {}
        self._size_multiple = _size_multiple(text2img)
        if native is None:
            default_edge = _default_edge(text2img)
            native = (default_edge, "the model's config") if default_edge else None
        self.native_edge: int | None = native[0] if native else None
        """The square edge the model was trained at; ``tools.sizes.choose_frame`` keeps its area."""
        self.native_family: str = native[1] if native else ""
        self._text2img_parameters = _call_parameters(text2img)
        self._img2img_parameters = _call_parameters(img2img) if img2img is not None else frozenset()
        self.dtype = dtype_name(text2img.dtype)

    @property
    def size_multiple(self) -> int:
        """What both frame edges must divide by (``tools.sizes.choose_frame`` rounds to it)."""
        return self._size_multiple

    # -- the one public method -------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        negative_prompt: str,
        seeds: list[int],
        references: list[Image.Image],
        size: ImageSize,
    ) -> GenerationOutput:
        start = time.perf_counter()
        # 1. Check inputs. Raise error if not correct
        self.check_inputs(prompt, seeds)

        # 2. Define call parameters: frame size, mode, steps
        warnings: list[str] = []
        frame = round_size(size, self._size_multiple)
        if frame != size:
            warnings.append(f"Size {size} rounded to {frame}: {self.model} needs multiples of {self._size_multiple}.")
        mode = self._mode(references, warnings)
        anchor_use = self._anchor_use(mode, references)
        negative_applied = bool(negative_prompt) and self._accepts_negative(mode)
        steps = self.steps
        if mode == "img2img":
            # Image-to-image runs int(steps * strength) steps; at least one must remain.
            steps = max(self.steps, math.ceil(1 / self.img2img_strength))
        params: dict[str, Any] = {
            "backend": self.name,
            "mode": mode,
            "steps": steps,
            "guidance_scale": self.guidance_scale,
            # What the scheduler applies (effective_img2img_strength), beside what was asked.
            "strength": self._applied_strength(steps) if mode == "img2img" else None,
            "requested_strength": self.img2img_strength if mode == "img2img" else None,
            "ip_adapter_scale": self.ip_adapter_scale if mode == "ip_adapter" or anchor_use == "ip_adapter" else None,
            "anchor": anchor_use,
            "anchor_blend": ANCHOR_BLEND if anchor_use == "init_blend" else None,
            "dtype": self.dtype,
        }
        used = 0 if mode == "text2img" else 2 if anchor_use else 1
        base_metadata = {
            **params,
            "model": self.model,
            "device": self.device,
            "size": str(frame),
            "requested_size": str(size),
            "negative_prompt_applied": negative_applied,
            "references_used": used,
            "rng": "torch.Generator('cpu') per seed",
        }

        # 3. Look up the cache
        found = lookup_seeds(
            self.cache,
            seeds,
            prompt=prompt,
            negative_prompt=negative_prompt if negative_applied else "",
            model=self.cache_model_id,
            size=frame,
            reference_digest=references_digest(references[:used]) if used else "",
            params=params,
        )

        # 4. Generate the misses in batches, halving the batch on out-of-memory
        pending = found.pending
        if pending:
            fitted = [
                image.convert("RGB").resize((frame.width, frame.height), Image.Resampling.LANCZOS)
                for image in references[:used]
            ]
            reference = fitted[0] if fitted else None
            anchor = None
            if anchor_use == "init_blend":
                reference = Image.blend(fitted[0], fitted[1], ANCHOR_BLEND)
            elif anchor_use == "ip_adapter":
                anchor = fitted[1]
            made, batch_sizes = self._generate_batches(
                prompt,
                negative_prompt if negative_applied else None,
                pending,
                reference,
                frame,
                mode,
                steps,
                warnings,
                anchor=anchor,
            )
            for seed, (image, batch_size) in made.items():
                metadata = {
                    **base_metadata,
                    "seed": seed,
                    "batch_size": batch_size,
                    "batch_sizes": batch_sizes,
                    "cache_hit": False,
                }
                found.store(seed, image, metadata)

        return GenerationOutput(
            images=[found.images[seed] for seed in seeds],
            backend=self.name,
            model=self.model,
            elapsed_s=time.perf_counter() - start,
            cache_hits=found.hits,
            warnings=warnings,
        )

    def check_inputs(self, prompt: str, seeds: Sequence[int]) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"`prompt` must be a non-empty string, got {prompt!r}.")
        if not seeds:
            raise ValueError("`seeds` must hold at least one seed, got [].")
        for seed in seeds:
            if not isinstance(seed, int) or not 0 <= seed < 2**63:
                raise ValueError(f"`seeds` must be integers in [0, 2**63), got {seed!r}.")

    # -- steps of generate -----------------------------------------------------------------

    def _mode(self, references: list[Image.Image], warnings: list[str]) -> Mode:
        if not references:
            return "text2img"
        if self.ip_adapter_scale is not None and (len(references) < 2 or self.img2img is None):
            return "ip_adapter"
        if self.img2img is None:
            warnings.append(f"References ignored: {type(self.text2img).__name__} has no image-to-image pipeline.")
            return "text2img"
        return "img2img"

    def _anchor_use(self, mode: Mode, references: list[Image.Image]) -> AnchorUse | None:
        """How the anchor (``references[1]``) conditions the call (the module docstring's rule)."""
        if mode != "img2img" or len(references) < 2:
            return None
        return "ip_adapter" if self.ip_adapter_scale is not None else "init_blend"

    def _applied_strength(self, steps: int) -> float | None:
        if steps not in self._strength_by_steps:
            scheduler = getattr(self.img2img, "scheduler", None)
            self._strength_by_steps[steps] = (
                effective_img2img_strength(scheduler, steps, self.img2img_strength) if scheduler is not None else None
            )
        return self._strength_by_steps[steps]

    def _accepts_negative(self, mode: Mode) -> bool:
        parameters = self._img2img_parameters if mode == "img2img" else self._text2img_parameters
        return "negative_prompt" in parameters and self.uses_cfg and self.guidance_scale > 1

    def _generate_batches(
        self,
        prompt: str,
        negative_prompt: str | None,
        seeds: list[int],
        reference: Image.Image | None,
        frame: ImageSize,
        mode: Mode,
        steps: int,
        warnings: list[str],
        *,
        anchor: Image.Image | None = None,
    ) -> tuple[dict[int, tuple[Image.Image, int]], list[int]]:
        """Run ``seeds`` in batches as large as allowed; on out-of-memory halve the batch and go
        on with the seeds not yet made. Returns each seed's image with its batch size, and
        the batch sizes run."""
        made: dict[int, tuple[Image.Image, int]] = {}
        batch_sizes: list[int] = []
        position = 0
        while position < len(seeds):
            # A size that just ran out of memory is not tried again until enough smaller
            # batches have fit (tools.batching.AdaptiveBatch).
            chunk = seeds[position : position + self._batch.size(len(seeds) - position)]
            out_of_memory: str | None = None
            try:
                # The device lock first: a scorer on the same device waits for this batch.
                with device_lock(self.device), self._lock:
                    result = self._run(prompt, negative_prompt, chunk, reference, frame, mode, steps, anchor=anchor)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                # Keep the message only. The exception's traceback references the frames of
                # the pipeline call, and they hold its activations: memory can be returned only
                # after the handler has ended and the exception (with its frames) is gone.
                out_of_memory = str(exc)
            if out_of_memory is not None:
                free_device_memory(self.device)
                if len(chunk) == 1:
                    # `from None`: a chained cause would keep the frames (and the tensors) alive.
                    raise GenerationError(
                        f"Out of memory on {self.device} generating one {frame} image with {self.model} "
                        f"({self.dtype}, {steps} steps). Lower the resolution, enable attention/VAE slicing or "
                        f"CPU offload, or use a smaller model. ({out_of_memory})"
                    ) from None
                batch = self._batch.shrink(len(chunk))
                message = (
                    f"Out of memory on {self.device} with a batch of {len(chunk)}; retrying in batches of {batch}."
                )
                logger.warning(message)
                warnings.append(message)
                continue
            self._batch.succeeded(len(chunk))
            batch_sizes.append(len(chunk))
            for seed, image in zip(chunk, result, strict=True):
                made[seed] = (image, len(chunk))
            position += len(chunk)
        return made, batch_sizes

    def _run(
        self,
        prompt: str,
        negative_prompt: str | None,
        seeds: list[int],
        reference: Image.Image | None,
        frame: ImageSize,
        mode: Mode,
        steps: int,
        *,
        anchor: Image.Image | None = None,
    ) -> list[Image.Image]:
        """One pipeline call for ``seeds``: one CPU generator per seed, so each image's noise
        depends on its own seed only. ``anchor`` conditions the IP-Adapter of an
        image-to-image call."""
        import torch

        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        pipeline = self.img2img if mode == "img2img" else self.text2img
        if pipeline is None:
            raise RuntimeError("mode 'img2img' needs an image-to-image pipeline, and none is loaded")
        parameters = self._img2img_parameters if mode == "img2img" else self._text2img_parameters
        kwargs: dict[str, Any] = {
            "prompt": prompt,
            "num_images_per_prompt": len(seeds),
            "generator": generators,
            "num_inference_steps": steps,
            "guidance_scale": self.guidance_scale,
            "output_type": "pil",
        }
        if negative_prompt is not None:
            kwargs["negative_prompt"] = negative_prompt
        if mode == "img2img":
            kwargs["image"] = reference
            kwargs["strength"] = self.img2img_strength
        if "height" in parameters and "width" in parameters:
            kwargs["height"], kwargs["width"] = frame.height, frame.width
        if self.ip_adapter_scale is not None:
            # An IP-Adapter, once loaded, needs an image on every call: without a reference
            # it gets a blank one at scale 0, which leaves the text-only result unchanged.
            if mode == "ip_adapter":
                self.text2img.set_ip_adapter_scale(self.ip_adapter_scale)
                kwargs["ip_adapter_image"] = reference
            elif anchor is not None:
                # The UNet (and its adapter layers) is shared with the image-to-image pipeline.
                self.text2img.set_ip_adapter_scale(self.ip_adapter_scale)
                kwargs["ip_adapter_image"] = anchor
            else:
                self.text2img.set_ip_adapter_scale(0.0)
                kwargs["ip_adapter_image"] = Image.new("RGB", (224, 224), (127, 127, 127))
        with torch.inference_mode():
            output = pipeline(**kwargs)
        return list(output.images)


# -- loading ---------------------------------------------------------------------------------


def _dtype_keyword() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (2026); older releases accept only the
    old name."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _display_name(model: str, folder: Path) -> str:
    """The hub id (org/name) for a Hugging Face cache snapshot folder, else what the user gave."""
    parts = folder.parts
    if "snapshots" in parts:
        repo_folder = parts[parts.index("snapshots") - 1]
        if repo_folder.startswith("models--"):
            return repo_folder.removeprefix("models--").replace("--", "/")
    return model


def _pipeline_class(folder: Path) -> str:
    try:
        return str(json.loads((folder / "model_index.json").read_text(encoding="utf-8"))["_class_name"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"`model` folder {str(folder)!r} has no readable model_index.json: {exc}") from exc


def _parse_ip_adapter(spec: str) -> tuple[str, str, str]:
    """Split 'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS' into its three parts, e.g.
    'h94/IP-Adapter:models/ip-adapter_sd15.safetensors' -> (h94/IP-Adapter, models, weights)."""
    source, _, weight_path = spec.rpartition(":")
    if not source or not weight_path or weight_path.endswith("/"):
        raise ValueError(
            "`ip_adapter` must look like 'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS', e.g. "
            f"'h94/IP-Adapter:models/ip-adapter_sd15.safetensors', got {spec!r}."
        )
    subfolder, _, weight_name = weight_path.rpartition("/")
    return source, subfolder, weight_name


#: Cross-attention width -> the family whose UNet has it, for the IP-Adapter mismatch message.
_CROSS_ATTENTION_FAMILIES = {
    768: "Stable Diffusion 1.x",
    1024: "Stable Diffusion 2.x / SD-Turbo",
    2048: "SDXL / SDXL-Turbo",
}


def _family_of_width(width: int) -> str:
    return _CROSS_ATTENTION_FAMILIES.get(width, "an unknown family")


def ip_adapter_width(weights: Path) -> int | None:
    """The cross-attention width an IP-Adapter's weights are built for: the input width of its
    ``to_k_ip`` projections (768 for the SD 1.5 adapters, 2048 for the SDXL ones), read from
    the safetensors header (or the .bin state dict) without loading the model. None when the
    file has no such projection."""
    if weights.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if ".to_k_ip" in key and key.endswith(".weight"):
                    return int(handle.get_slice(key).get_shape()[1])
        return None
    import torch

    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    layers = state.get("ip_adapter", state) if isinstance(state, dict) else {}
    for key, tensor in layers.items():
        if "to_k_ip" in key and key.endswith(".weight"):
            return int(tensor.shape[1])
    return None


def check_ip_adapter_fits(weights: Path, model_folder: Path, model: str) -> None:
    """Refuse an IP-Adapter built for another family, naming both widths: diffusers would fail
    deep inside ``load_ip_adapter`` with a size mismatch (sd-turbo, an SD 2.1, has
    cross-attention 1024; ip-adapter_sd15 is built for 768; no IP-Adapter exists for SD 2.x)."""
    try:
        unet_config = json.loads((model_folder / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a transformer pipeline (FLUX, SD3) or an unusual layout: diffusers decides
    unet_width = unet_config.get("cross_attention_dim")
    adapter_width = ip_adapter_width(weights)
    if not isinstance(unet_width, int) or adapter_width is None or adapter_width == unet_width:
        return
    raise ValueError(
        f"IP-Adapter {weights.name} is built for cross-attention width {adapter_width} "
        f"({_family_of_width(adapter_width)}), but {model}'s UNet has cross_attention_dim {unet_width} "
        f"({_family_of_width(unet_width)}): it does not fit. Use an adapter for that family "
        "(README, 'Real models': SD 1.5 -> h94/IP-Adapter:models/ip-adapter_sd15.safetensors, SDXL -> "
        "h94/IP-Adapter:sdxl_models/ip-adapter_sdxl.safetensors; there is none for SD 2.x and SD-Turbo) "
        "or leave `ip_adapter` unset."
    )


def ip_adapter_download_hint(source: str, subfolder: str, weight_name: str, encoder: str) -> str:
    """Commands that fetch both the adapter weights and its image encoder folder (``encoder``,
    relative to the repository). Two commands: ``hf download`` ignores ``--include`` once a
    filename is given, so one command cannot name the file and include the folder."""
    weights = f"{subfolder}/{weight_name}" if subfolder else weight_name
    return f"`hf download {source} {weights} && hf download {source} --include '{encoder}/*'`"


def _resolve_image_encoder(spec: str | None, source_folder: Path, subfolder: str) -> Path:
    """The image encoder folder for an IP-Adapter: ``spec`` is None (``SUBFOLDER/image_encoder``
    beside the weights, diffusers' default), a folder inside the adapter's source
    ('models/image_encoder', what the SDXL ViT-H adapters need), 'REPO_OR_FOLDER:SUBFOLDER',
    or a local folder."""
    from imageforge.tools import model_store

    if spec is None:
        return source_folder / subfolder / "image_encoder" if subfolder else source_folder / "image_encoder"
    if ":" in spec:
        other, _, inner = spec.rpartition(":")
        local = Path(other).expanduser()
        base = local if local.is_dir() else model_store.local_snapshot(other)
        return (base / inner) if base is not None else Path(other) / inner
    if spec.startswith(("/", "~", "./", "../")):
        return Path(spec).expanduser()
    return source_folder / spec


def _load_pipelines(
    folder: Path,
    *,
    device: str,
    dtype: torch.dtype,
    variant: str | None,
    attention_slicing: bool,
    vae_slicing: bool,
    cpu_offload: bool,
    ip_adapter: tuple[Path, str, str, Path] | None,
) -> LoadedPipelines:
    """Load the text-to-image pipeline from ``folder`` (local files only) and derive the
    image-to-image pipeline from its components."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    dtype_kwargs = {_dtype_keyword(): dtype}
    text2img = AutoPipelineForText2Image.from_pretrained(
        str(folder), local_files_only=True, variant=variant, **dtype_kwargs
    )
    text2img.set_progress_bar_config(disable=True)
    if ip_adapter is not None:
        from transformers import CLIPVisionModelWithProjection

        source, subfolder, weight_name, encoder_folder = ip_adapter
        # The image encoder is loaded from its own folder and registered first, so that
        # load_ip_adapter (which otherwise looks only inside the adapter's repository) uses it.
        encoder = CLIPVisionModelWithProjection.from_pretrained(str(encoder_folder), local_files_only=True)
        # transformers declares `to` through @wraps(Module.to), which hides the bound self from mypy.
        text2img.register_modules(image_encoder=encoder.to(dtype))  # type: ignore[arg-type]
        text2img.load_ip_adapter(
            str(source), subfolder=subfolder, weight_name=weight_name, image_encoder_folder=None, local_files_only=True
        )
    try:
        # No dtype here. AutoPipelineForImage2Image.from_pipe (diffusers 0.42) builds the new
        # pipeline from the very same component objects and never casts them; it would silently
        # ignore a dtype. (DiffusionPipeline.from_pipe on a concrete class is different: it casts
        # to its dtype argument, float32 when none is given, and would cast the shared weights
        # of text2img too.) The test checks that the components are shared, uncast.
        img2img = AutoPipelineForImage2Image.from_pipe(text2img)
        img2img.set_progress_bar_config(disable=True)
    except ValueError as exc:
        logger.warning("%s has no image-to-image pipeline (%s); references will be ignored.", folder, exc)
        img2img = None
    if attention_slicing:
        text2img.enable_attention_slicing()
    if vae_slicing and hasattr(text2img.vae, "enable_slicing"):
        text2img.vae.enable_slicing()
    if cpu_offload:
        # Offload hooks sit on the shared modules; each pipeline re-installs its own at the
        # end of a call, and calls are serialised by LoadedPipelines.lock.
        text2img.enable_model_cpu_offload(device=device)
        if img2img is not None:
            img2img.enable_model_cpu_offload(device=device)
    else:
        text2img.to(device)
    return LoadedPipelines(text2img=text2img, img2img=img2img)


def load_diffusers_generator(
    model: str,
    *,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    cpu_offload: bool = False,
    img2img_strength: float = 0.6,
    ip_adapter: str | None = None,
    ip_adapter_scale: float = 0.6,
    ip_adapter_image_encoder: str | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    cache: GenerationCache | None = None,
    max_batch_size: int | None = None,
) -> DiffusersGenerator:
    """A generator for any diffusers text-to-image model on disk, loaded once per process.

    ``model`` is a local folder (with model_index.json), a Hugging Face hub id whose weights
    are in the local cache, or a catalogue name ("sd-turbo"). ``ip_adapter`` is
    'REPO_OR_FOLDER:SUBFOLDER/WEIGHTS', also read from disk only; its image encoder is
    SUBFOLDER/image_encoder unless ``ip_adapter_image_encoder`` names another folder (see
    ``_resolve_image_encoder``), and it must be built for the model's cross-attention width
    (``check_ip_adapter_fits``). ``steps``/``guidance_scale`` default to the model family's values.
    """
    from imageforge.tools import model_store
    from imageforge.tools.model_cache import model_cache

    if not 0 < img2img_strength <= 1:
        raise ValueError(f"`img2img_strength` must be in (0, 1], got {img2img_strength!r}.")
    if not 0 <= ip_adapter_scale <= 2:
        raise ValueError(f"`ip_adapter_scale` must be in [0, 2], got {ip_adapter_scale!r}.")
    resolved_device = resolve_device(device)
    if cpu_offload and not resolved_device.startswith("cuda"):
        raise ValueError(f"`cpu_offload` needs a CUDA device, got device={resolved_device!r}.")
    folder = model_store.local_model_path(model)
    if folder is None:
        raise FileNotFoundError(
            f"Diffusers model {model!r} is not on disk (neither a complete local folder nor in the Hugging Face "
            f"cache at {model_store.hub_cache_dir()}). Download it first: `imageforge models pull sd-turbo` for "
            f"the default, or `hf download {model}`; nothing is downloaded implicitly."
        )
    ip_source: tuple[Path, str, str, Path] | None = None
    if ip_adapter is not None:
        source, subfolder, weight_name = _parse_ip_adapter(ip_adapter)
        local = Path(source).expanduser()
        source_folder = local if local.is_dir() else model_store.local_snapshot(source)
        default_encoder = f"{subfolder}/image_encoder" if subfolder else "image_encoder"
        encoder_in_repo = ip_adapter_image_encoder or default_encoder
        if source_folder is None or not (source_folder / subfolder / weight_name).is_file():
            raise FileNotFoundError(
                f"IP-Adapter weights {ip_adapter!r} are not on disk. Download them and their image encoder first: "
                f"{ip_adapter_download_hint(source, subfolder, weight_name, encoder_in_repo)}."
            )
        encoder_folder = _resolve_image_encoder(ip_adapter_image_encoder, source_folder, subfolder)
        if not (encoder_folder / "config.json").is_file():
            raise FileNotFoundError(
                f"The IP-Adapter's image encoder is not at {encoder_folder}. The SD 1.5 and SDXL adapters keep "
                "it in SUBFOLDER/image_encoder; the SDXL ViT-H ones use models/image_encoder: set "
                "`ip_adapter_image_encoder` (IMAGEFORGE_GENERATOR__IP_ADAPTER_IMAGE_ENCODER) to that folder. "
                f"Download: {ip_adapter_download_hint(source, subfolder, weight_name, encoder_in_repo)}."
            )
        check_ip_adapter_fits(source_folder / subfolder / weight_name, folder, model)
        ip_source = (source_folder, subfolder, weight_name, encoder_folder)

    pipeline_class = _pipeline_class(folder)
    display = _display_name(model, folder)
    defaults = sampling_defaults(display, pipeline_class)
    resolved_dtype = dtype or default_dtype(resolved_device, prefer_bf16=defaults.prefer_bf16)
    variant = model_store.weights_variant(folder)
    encoder_option = ip_source[3] if ip_source is not None else None
    options = f"attn={attention_slicing},vae={vae_slicing},offload={cpu_offload},ip={ip_adapter},enc={encoder_option}"
    key = f"diffusers:{folder}:{resolved_device}:{dtype_name(resolved_dtype)}:{options}"
    loaded = model_cache.get(
        key,
        lambda: _load_pipelines(
            folder,
            device=resolved_device,
            dtype=resolved_dtype,
            variant=variant,
            attention_slicing=attention_slicing,
            vae_slicing=vae_slicing,
            cpu_offload=cpu_offload,
            ip_adapter=ip_source,
        ),
        device=resolved_device,
        kind="generator",
    )
    return DiffusersGenerator(
        loaded.text2img,
        loaded.img2img,
        model=display,
        device=resolved_device,
        steps=steps if steps is not None else defaults.steps,
        guidance_scale=guidance_scale if guidance_scale is not None else defaults.guidance_scale,
        img2img_strength=img2img_strength,
        uses_cfg=defaults.uses_cfg,
        ip_adapter_scale=ip_adapter_scale if ip_source is not None else None,
        cache=cache,
        cache_model_id=str(folder),
        max_batch_size=max_batch_size,
        lock=loaded.lock,
        native=native_size(display, pipeline_class),
    )
