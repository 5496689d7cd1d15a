"""A CLIP model as scorers use it: L2-normalised image and text embeddings, in batches.

PickScore, CLIP-score, the aesthetic head and embedding consistency all need CLIP
embeddings. One ``ClipBackbone`` per checkpoint (loaded once through the model cache)
serves them all, and its ``ImageEmbeddingCache`` makes sure an image is pushed through the
vision tower once, however many scorers ask for it within a scoring round.

Loading never downloads unless asked (``allow_download``): weights come from a local path
or the Hugging Face cache. The image processor is always the PIL one, so results do not
depend on whether torchvision happens to be installed.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from PIL import Image

from imageforge.scoring.frames import whole_frames
from imageforge.tools.devices import default_dtype, device_lock, dtype_name, resolve_device
from imageforge.tools.model_cache import ModelCache, model_cache, resolve_weights

__all__ = [
    "ClipBackbone",
    "ImageEmbeddingCache",
    "check_batch_size",
    "check_images",
    "check_score_inputs",
    "embed_image_batches",
    "load_clip_backbone",
    "pil_backend_kwargs",
    "pooled_embeddings",
    "scorer_dtype",
    "torch_dtype_kwargs",
]


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    return batch_size


def check_images(images: Sequence[Image.Image], argument: str = "images") -> None:
    if isinstance(images, Image.Image) or not isinstance(images, Sequence):
        raise TypeError(f"`{argument}` must be a list of PIL images, got {type(images).__name__}.")
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"`{argument}[{i}]` must be a PIL image, got {type(image).__name__}.")


def check_score_inputs(images: Sequence[Image.Image], prompt: str) -> None:
    """The checks every prompt scorer makes before touching a model."""
    if not isinstance(prompt, str):
        raise TypeError(f"`prompt` must be a string, got {type(prompt).__name__}.")
    check_images(images)


def scorer_dtype(device: str, *, prefer_bf16: bool = False) -> torch.dtype:
    """``tools.devices.default_dtype`` as the scorers take it: fp16 on CUDA (halves memory, no
    measurable change in rankings), bf16 there with ``prefer_bf16`` where the GPU has it, and
    fp32 elsewhere, MPS included."""
    return default_dtype(device, prefer_bf16=prefer_bf16, half_on_mps=False)


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def pil_backend_kwargs() -> dict[str, Any]:
    """Ask for the PIL image processor: transformers 5 spells it ``backend="pil"``, 4.x
    ``use_fast=False`` (the fast processors need torchvision, which the core avoids)."""
    return {"backend": "pil"} if _transformers_major() >= 5 else {"use_fast": False}


def torch_dtype_kwargs(dtype: torch.dtype) -> dict[str, Any]:
    """``from_pretrained``'s dtype argument under its name for the installed transformers."""
    import transformers
    from packaging.version import Version

    name = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {name: dtype}


def pooled_embeddings(output: Any, kind: Literal["image", "text"]) -> torch.Tensor:
    """The projected, pooled embeddings from ``get_image_features`` / ``get_text_features``.

    transformers 4 returns a tensor; transformers 5 returns ``BaseModelOutputWithPooling``
    whose ``pooler_output`` holds the projection; the ``*WithProjection`` models return
    ``image_embeds`` / ``text_embeds``; ``return_dict=False`` gives a tuple.
    """
    if isinstance(output, torch.Tensor):
        return output
    named = getattr(output, f"{kind}_embeds", None)
    if isinstance(named, torch.Tensor):
        return named
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], torch.Tensor):
        return output[1]
    raise TypeError(f"Cannot find {kind} embeddings in a {type(output).__name__} returned by the model.")


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(p=2, dim=-1, keepdim=True).clamp_min(1e-12)


def embed_image_batches(
    images: Sequence[Image.Image],
    batch_size: int,
    image_processor: Any,
    embed: Callable[[torch.Tensor], torch.Tensor],
    width: int,
) -> torch.Tensor:
    """Rows for ``images``: ``batch_size`` images at a time, each padded to a square
    (``scoring.frames.whole_frames``, so the processor's centre crop keeps the whole frame),
    through ``image_processor`` and ``embed`` (the processor's CPU pixel values to the
    model's pooled embeddings), then L2-normalised, float32, on the CPU. ``width`` shapes
    the empty result. The vision tower is the only part the CLIP and DINOv2 backbones do
    differently."""
    check_batch_size(batch_size)
    rows = []
    for start in range(0, len(images), batch_size):
        # The whole frame, padded to a square: the processor's centre crop would cut a wide one.
        batch = whole_frames(images[start : start + batch_size], image_processor)
        pixels = image_processor(images=batch, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            pooled = embed(pixels)
        rows.append(_normalise(pooled.float()).cpu())
    return torch.cat(rows) if rows else torch.empty(0, width)


class ImageEmbeddingCache:
    """Embeddings of recently seen images, keyed by image identity, so that scorers sharing a
    backbone embed each image once per scoring round.

    Holds only weak references: an entry disappears with its image, so the cache neither
    keeps images alive nor confuses a new image with a dead one at the same address. Images
    are not expected to be edited in place once generated; a changed image must be a new
    object to be embedded again.
    """

    def __init__(self, capacity: int = 256) -> None:
        if capacity < 1:
            raise ValueError(f"`capacity` must be at least 1, got {capacity!r}.")
        self._capacity = capacity
        # Re-entrant: a weakref callback may run (garbage collection) while the lock is held.
        self._lock = threading.RLock()
        self._entries: OrderedDict[int, tuple[weakref.ref, torch.Tensor]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _lookup(self, image: Image.Image) -> torch.Tensor | None:
        entry = self._entries.get(id(image))
        if entry is None or entry[0]() is not image:
            return None
        self._entries.move_to_end(id(image))
        return entry[1]

    def _forget(self, key: int, ref: weakref.ref) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is ref:
                del self._entries[key]

    def get_or_compute(
        self, images: Sequence[Image.Image], compute: Callable[[list[Image.Image]], torch.Tensor]
    ) -> torch.Tensor:
        """Rows for ``images`` in order; ``compute`` runs once, on the images not cached
        (each distinct image once, even if it appears twice)."""
        with self._lock:
            found = {id(im): emb for im in images if (emb := self._lookup(im)) is not None}
        missing = list({id(im): im for im in images if id(im) not in found}.values())
        if missing:
            fresh = compute(missing)
            with self._lock:
                for image, row in zip(missing, fresh, strict=True):
                    key = id(image)
                    ref = weakref.ref(image, functools.partial(self._forget, key))
                    self._entries[key] = (ref, row)
                    found[key] = row
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
        return torch.stack([found[id(im)] for im in images])


@dataclass(eq=False)
class ClipBackbone:
    """A loaded CLIP model with its tokenizer and image processor.

    Built from components that are already loaded; ``load_clip_backbone`` fetches them.
    Embeddings come back as float32 on the CPU, L2-normalised, one row per input.
    """

    model: Any
    tokenizer: Any
    image_processor: Any
    name: str
    device: str = "cpu"
    cache: ImageEmbeddingCache = field(default_factory=ImageEmbeddingCache)

    @property
    def logit_scale(self) -> float:
        """The learned temperature as the factor on cosines, ``model.logit_scale.exp()``
        (~100 for trained CLIPs, ~14.3 for random ones)."""
        return float(self.model.logit_scale.detach().float().exp())

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def max_text_length(self) -> int:
        """Tokens the text tower takes (77 for CLIP); longer prompts are truncated."""
        limit = int(self.model.config.text_config.max_position_embeddings)
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None) or limit
        return min(limit, int(tokenizer_limit))

    def image_embeddings(self, images: Sequence[Image.Image], batch_size: int = 8) -> torch.Tensor:
        """One vision forward pass per ``batch_size`` images; no cache."""
        dtype = next(self.model.parameters()).dtype

        def embed(pixels: torch.Tensor) -> torch.Tensor:
            with device_lock(self.device):  # one model call at a time on a device (tools.devices)
                out = self.model.get_image_features(pixel_values=pixels.to(self.device, dtype))
                return pooled_embeddings(out, "image")

        return embed_image_batches(images, batch_size, self.image_processor, embed, self.embed_dim)

    def cached_image_embeddings(self, images: Sequence[Image.Image], batch_size: int = 8) -> torch.Tensor:
        """As ``image_embeddings``, but an image already embedded (by any scorer on this
        backbone, while the image is alive) is not embedded again."""
        return self.cache.get_or_compute(images, lambda todo: self.image_embeddings(todo, batch_size))

    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """One text forward pass for all ``texts``, each truncated to ``max_text_length``."""
        if isinstance(texts, str):
            raise TypeError(f"`texts` must be a list of strings, got the string {texts!r}.")
        if not texts:
            return torch.empty(0, self.embed_dim)
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_text_length,
            return_tensors="pt",
        )
        with torch.inference_mode(), device_lock(self.device):
            out = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
        return _normalise(pooled_embeddings(out, "text").float()).cpu()

    def prompt_cosines(self, images: Sequence[Image.Image], prompt: str, batch_size: int = 8) -> torch.Tensor:
        """Cosine of each image's embedding with the prompt's, one per image: what the CLIP
        prompt scorers (CLIP-score, PickScore) start from. Image embeddings come from the
        cache; an empty list costs no forward pass."""
        check_score_inputs(images, prompt)
        if not images:
            return torch.empty(0)
        image_embeds = self.cached_image_embeddings(images, batch_size)
        return image_embeds @ self.text_embeddings([prompt])[0]


def load_clip_backbone(
    model: str,
    *,
    processor: str | None = None,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> ClipBackbone:
    """Load (once per process) a transformers CLIPModel and its processor.

    ``processor`` names a different repo for the tokenizer and image processor (PickScore
    ships without one and uses laion/CLIP-ViT-H-14-laion2B-s32B-b79K's). Raises
    ``ModelNotAvailableError`` when the weights are not on disk and ``allow_download`` is off.
    """
    device = resolve_device(device)
    dtype = dtype or scorer_dtype(device)
    processor = processor or model
    key = f"clip|{model}|{processor}|{device}|{dtype_name(dtype)}"

    def load() -> ClipBackbone:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        source, local_only = resolve_weights(model, allow_download=allow_download)
        proc_source, proc_local = resolve_weights(processor, allow_download=allow_download, kind="processor")
        clip = CLIPModel.from_pretrained(source, local_files_only=local_only, **torch_dtype_kwargs(dtype))
        # transformers declares `to` through @wraps(Module.to), which hides the bound self from mypy.
        clip = clip.to(device).eval()  # type: ignore[arg-type]
        tokenizer = AutoTokenizer.from_pretrained(proc_source, local_files_only=proc_local)
        image_processor = AutoImageProcessor.from_pretrained(
            proc_source, local_files_only=proc_local, **pil_backend_kwargs()
        )
        return ClipBackbone(
            model=clip,
            tokenizer=tokenizer,
            image_processor=image_processor,
            name=model,
            device=device,
        )

    return models.get(key, load, device=device, kind="clip")
