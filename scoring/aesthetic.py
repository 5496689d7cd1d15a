"""LAION improved aesthetic predictor: an MLP on L2-normalised CLIP ViT-L/14 image embeddings
that predicts a 1-10 rating (christophschuhmann/improved-aesthetic-predictor).

The layer layout is the published one (``simple_inference.py``): Linear(768, 1024),
Dropout(0.2), Linear(1024, 128), Dropout(0.2), Linear(128, 64), Dropout(0.1),
Linear(64, 16), Linear(16, 1), with no activations, so the state dict keys are
``layers.{0,2,4,6,7}.{weight,bias}``. The usual weights file is
``sac+logos+ava1-l14-linearMSE.pth``.

It reads the same ViT-L/14 image embeddings as CLIP-score: build both with
``clip_family_scorers`` (or from the same backbone) and one vision forward pass per batch
serves both, through the backbone's embedding cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from imageforge.scoring.clip_backbone import (
    ClipBackbone,
    check_batch_size,
    check_score_inputs,
    load_clip_backbone,
)
from imageforge.scoring.clipscore import CLIPSCORE_MODEL, ClipScoreScorer
from imageforge.scoring.normalise import aesthetic_to_100
from imageforge.scoring.schemas import Slot
from imageforge.tools.model_cache import ModelCache, ModelNotAvailableError, model_cache

__all__ = [
    "AESTHETIC_CLIP_MODEL",
    "AESTHETIC_HEAD_FILENAME",
    "AESTHETIC_HEAD_URL",
    "AestheticHead",
    "AestheticScorer",
    "aesthetic_head_shapes",
    "clip_family_scorers",
    "default_aesthetic_head_path",
    "load_aesthetic_head",
    "load_aesthetic_scorer",
]

AESTHETIC_CLIP_MODEL = CLIPSCORE_MODEL
AESTHETIC_HEAD_FILENAME = "sac+logos+ava1-l14-linearMSE.pth"
AESTHETIC_HEAD_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/" + AESTHETIC_HEAD_FILENAME
)


def default_aesthetic_head_path() -> Path:
    """Where ``imageforge models pull aesthetic`` installs the head: ``$HF_HOME/imageforge/``
    (HF_HOME read at call time), as the weights are published on GitHub, not as a model repo."""
    from imageforge.tools.model_store import hf_home

    return hf_home() / "imageforge" / AESTHETIC_HEAD_FILENAME


def aesthetic_head_shapes(embed_dim: int = 768) -> dict[str, tuple[int, ...]]:
    """The published state dict: key -> shape."""
    widths = [embed_dim, 1024, 128, 64, 16, 1]
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (fan_in, fan_out) in zip((0, 2, 4, 6, 7), pairwise(widths), strict=True):
        shapes[f"layers.{index}.weight"] = (fan_out, fan_in)
        shapes[f"layers.{index}.bias"] = (fan_out,)
    return shapes


class AestheticHead(nn.Module):
    """The published MLP; ``forward`` takes L2-normalised embeddings, returns (N,) ratings."""

    def __init__(self, embed_dim: int = 768) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings).squeeze(-1)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):  # the file's content is wrong, not an argument's type
        raise ValueError(f"Aesthetic head {str(path)!r} holds a {type(state).__name__}, not a state dict.")
    return state


def load_aesthetic_head(path: str | Path, *, embed_dim: int = 768) -> AestheticHead:
    """Load the published .pth (or a .safetensors with the same keys), checking every key and
    shape first so that a wrong file fails with the key at fault, not deep inside torch."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotAvailableError(
            f"Aesthetic head {str(path)!r} does not exist. Download {AESTHETIC_HEAD_URL} "
            f"to {default_aesthetic_head_path()} (or run `imageforge models pull`)."
        )
    state = _read_state_dict(path)
    expected = aesthetic_head_shapes(embed_dim)
    for key, shape in expected.items():
        if key not in state:
            raise ValueError(f"Aesthetic head {str(path)!r} lacks `{key}` (expected shape {shape}).")
        got = tuple(state[key].shape)
        if got != shape:
            raise ValueError(f"Aesthetic head {str(path)!r}: `{key}` has shape {got}, expected {shape}.")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(f"Aesthetic head {str(path)!r} has unexpected keys {unexpected}.")
    head = AestheticHead(embed_dim)
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head.eval()


@dataclass(eq=False)
class AestheticScorer:
    """Scorer for the "aesthetic" slot; the prompt is not used. ``raw_scores`` gives 1-10."""

    backbone: ClipBackbone
    head: AestheticHead
    batch_size: int = 8
    name: str = "laion-aesthetic"
    slot: Slot = "aesthetic"
    stand_in: bool = False
    model: str = ""

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if self.head.embed_dim != self.backbone.embed_dim:
            raise ValueError(
                f"The aesthetic head takes {self.head.embed_dim}-d embeddings (CLIP ViT-L/14) but "
                f"`backbone` {self.backbone.name!r} gives {self.backbone.embed_dim}-d ones."
            )
        self.model = self.model or f"{self.backbone.name} + {AESTHETIC_HEAD_FILENAME}"

    def raw_scores(self, images: Sequence[Image.Image], prompt: str = "") -> list[float]:
        check_score_inputs(images, prompt)
        if not images:
            return []
        embeddings = self.backbone.cached_image_embeddings(images, self.batch_size)
        with torch.inference_mode():
            return self.head(embeddings).tolist()

    def score(self, images: list[Image.Image], prompt: str) -> list[float]:
        return [aesthetic_to_100(rating) for rating in self.raw_scores(images, prompt)]


def clip_family_scorers(
    backbone: ClipBackbone, head: AestheticHead, *, batch_size: int = 8
) -> tuple[ClipScoreScorer, AestheticScorer]:
    """CLIP-score and aesthetic on one backbone: one image forward pass per batch serves both."""
    return (
        ClipScoreScorer(backbone=backbone, batch_size=batch_size),
        AestheticScorer(backbone=backbone, head=head, batch_size=batch_size),
    )


def load_aesthetic_scorer(
    *,
    head_path: str | Path | None = None,
    clip_model: str = AESTHETIC_CLIP_MODEL,
    device: str = "auto",
    batch_size: int = 8,
    allow_download: bool = False,
    models: ModelCache = model_cache,
) -> AestheticScorer:
    """The aesthetic scorer on the process-wide ViT-L/14 backbone (the one CLIP-score uses
    when both name the same model, so they share embeddings). The head defaults to
    ``default_aesthetic_head_path()``; the head file itself is never downloaded here."""
    path = Path(head_path) if head_path is not None else default_aesthetic_head_path()
    head = models.get(f"aesthetic-head|{path}", lambda: load_aesthetic_head(path), device="cpu", kind="aesthetic")
    backbone = load_clip_backbone(clip_model, device=device, allow_download=allow_download, models=models)
    return AestheticScorer(backbone=backbone, head=head, batch_size=batch_size)
