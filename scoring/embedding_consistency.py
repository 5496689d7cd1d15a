"""Consistency with the references as image-embedding cosine (seed 003's validation check).

Each variation is compared with every reference; the best-matching reference counts (a scene
may be consistent with the anchor or with the previous winner). The cosine goes through the
embedding family's band in ``normalise.CONSISTENCY_BANDS`` to 0-100, because unrelated
images do not score a cosine of 0 (CLIP's embeddings share a narrow cone).

Embeddings come from a CLIP vision tower (the same backbone, and so the same embedding
cache, as CLIP-score and aesthetic when the model id matches) or from DINOv2 (its pooled CLS
token), which follows subject identity more closely than CLIP (DreamBooth's DINO metric).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from PIL import Image

from imageforge.scoring.clip_backbone import (
    ImageEmbeddingCache,
    check_batch_size,
    check_images,
    embed_image_batches,
    load_clip_backbone,
    pil_backend_kwargs,
    scorer_dtype,
    torch_dtype_kwargs,
)
from imageforge.scoring.normalise import CONSISTENCY_BANDS, consistency_to_100
from imageforge.tools.devices import device_lock, dtype_name, resolve_device
from imageforge.tools.model_cache import ModelCache, model_cache, resolve_weights

__all__ = [
    "DEFAULT_CONSISTENCY_MODEL",
    "DinoBackbone",
    "EmbeddingConsistencyScorer",
    "ImageEmbedder",
    "load_dino_backbone",
    "load_embedding_consistency_scorer",
]

DEFAULT_CONSISTENCY_MODEL = "openai/clip-vit-large-patch14"
EmbeddingKind = Literal["clip", "dinov2"]


class ImageEmbedder(Protocol):
    """Anything that turns images into L2-normalised rows, caching by image identity."""

    name: str

    def cached_image_embeddings(self, images: Sequence[Image.Image], batch_size: int = 8) -> torch.Tensor: ...


def _pooled_cls(output: Any) -> torch.Tensor:
    """The pooled output, or the CLS token of the last hidden state for models without one."""
    pooled = getattr(output, "pooler_output", None)
    return output.last_hidden_state[:, 0] if pooled is None else pooled


@dataclass(eq=False)
class DinoBackbone:
    """A loaded DINOv2 (or any transformers vision model with a pooled output or a CLS token)."""

    model: Any
    image_processor: Any
    name: str
    device: str = "cpu"
    cache: ImageEmbeddingCache = field(default_factory=ImageEmbeddingCache)

    def image_embeddings(self, images: Sequence[Image.Image], batch_size: int = 8) -> torch.Tensor:
        """One forward pass per ``batch_size`` images; the pooled CLS embedding, L2-normalised."""
        dtype = next(self.model.parameters()).dtype

        def embed(pixels: torch.Tensor) -> torch.Tensor:
            with device_lock(self.device):  # one model call at a time on a device (tools.devices)
                return _pooled_cls(self.model(pixel_values=pixels.to(self.device, dtype)))

        width = int(self.model.config.hidden_size)
        return embed_image_batches(images, batch_size, self.image_processor, embed, width)

    def cached_image_embeddings(self, images: Sequence[Image.Image], batch_size: int = 8) -> torch.Tensor:
        return self.cache.get_or_compute(images, lambda todo: self.image_embeddings(todo, batch_size))


@dataclass(eq=False)
class EmbeddingConsistencyScorer:
    """ConsistencyScorer: best cosine to any reference, through ``band``, as 0-100.

    Variations and references go through the embedder together, so one call costs one
    forward pass per ``batch_size`` images (references already embedded are not redone).
    """

    embedder: ImageEmbedder
    band: tuple[float, float]
    batch_size: int = 8
    name: str = "embedding-consistency"
    model: str = ""
    stand_in: bool = False

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        low, high = self.band
        if not high > low:
            raise ValueError(f"`band` must be (low, high) with high > low, got {self.band!r}.")
        self.model = self.model or self.embedder.name

    def cosines(self, images: Sequence[Image.Image], references: Sequence[Image.Image]) -> torch.Tensor:
        """(len(images), len(references)) cosine matrix."""
        check_images(images)
        check_images(references, "references")
        if not references:
            raise ValueError("`references` must hold at least one image to compare with.")
        if not images:
            return torch.empty(0, len(references))
        embeddings = self.embedder.cached_image_embeddings([*images, *references], self.batch_size)
        return embeddings[: len(images)] @ embeddings[len(images) :].T

    def score(self, images: list[Image.Image], references: list[Image.Image]) -> list[float]:
        best = self.cosines(images, references).max(dim=1).values
        return [consistency_to_100(float(c), self.band) for c in best]


def load_dino_backbone(
    model: str,
    *,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> DinoBackbone:
    """Load (once per process) a DINOv2 model through transformers' AutoModel."""
    device = resolve_device(device)
    dtype = dtype or scorer_dtype(device)
    key = f"dinov2|{model}|{device}|{dtype_name(dtype)}"

    def load() -> DinoBackbone:
        from transformers import AutoImageProcessor, AutoModel

        source, local_only = resolve_weights(model, allow_download=allow_download)
        vision = AutoModel.from_pretrained(source, local_files_only=local_only, **torch_dtype_kwargs(dtype))
        image_processor = AutoImageProcessor.from_pretrained(
            source, local_files_only=local_only, **pil_backend_kwargs()
        )
        return DinoBackbone(
            model=vision.to(device).eval(),
            image_processor=image_processor,
            name=model,
            device=device,
        )

    return models.get(key, load, device=device, kind="dinov2")


def _kind_of(model: str, allow_download: bool) -> EmbeddingKind:
    from transformers import AutoConfig

    source, local_only = resolve_weights(model, allow_download=allow_download)
    model_type = AutoConfig.from_pretrained(source, local_files_only=local_only).model_type
    if model_type == "clip":
        return "clip"
    if model_type == "dinov2":
        return "dinov2"
    raise ValueError(f"`model` {model!r} is a {model_type!r} model; consistency takes a CLIP or DINOv2 model.")


def load_embedding_consistency_scorer(
    *,
    model: str = DEFAULT_CONSISTENCY_MODEL,
    kind: EmbeddingKind | Literal["auto"] = "auto",
    band: tuple[float, float] | None = None,
    device: str = "auto",
    batch_size: int = 8,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> EmbeddingConsistencyScorer:
    """Consistency on a CLIP or DINOv2 model (``kind="auto"`` reads the checkpoint's config).
    The band defaults to the family's entry in ``CONSISTENCY_BANDS``."""
    if kind == "auto":
        kind = _kind_of(model, allow_download)
    if kind not in CONSISTENCY_BANDS:
        raise ValueError(f"`kind` must be 'auto', 'clip' or 'dinov2', got {kind!r}.")
    if kind == "clip":
        embedder: ImageEmbedder = load_clip_backbone(model, device=device, allow_download=allow_download, models=models)
    else:
        embedder = load_dino_backbone(model, device=device, allow_download=allow_download, models=models)
    return EmbeddingConsistencyScorer(
        embedder=embedder,
        band=band or CONSISTENCY_BANDS[kind],
        batch_size=batch_size,
        name=f"{kind}-consistency",
    )
