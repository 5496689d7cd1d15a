"""Embedding consistency on tiny random CLIP and DINOv2 models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imageforge.scoring.base import ConsistencyScorer
from imageforge.scoring.clip_backbone import load_clip_backbone
from imageforge.scoring.embedding_consistency import (
    DinoBackbone,
    EmbeddingConsistencyScorer,
    load_dino_backbone,
    load_embedding_consistency_scorer,
)
from imageforge.scoring.normalise import CONSISTENCY_BANDS
from imageforge.tools.model_cache import ModelCache
from tests.tiny_clip import make_images, save_tiny_dinov2


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, clip_dir):
    return {"clip": clip_dir, "dinov2": save_tiny_dinov2(tmp_path_factory.mktemp("dinov2"))}


@pytest.fixture(params=["clip", "dinov2"])
def scorer(request, dirs):
    return load_embedding_consistency_scorer(model=str(dirs[request.param]), device="cpu", models=ModelCache())


def _nudged(image: Image.Image, seed: int = 0) -> Image.Image:
    """The same picture with a little noise: what a consistent next scene is, at the extreme."""
    arr = np.asarray(image).astype(np.int16)
    noise = np.random.default_rng(seed).integers(-6, 7, size=arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))


def test_kind_is_read_from_the_checkpoint(dirs):
    clip = load_embedding_consistency_scorer(model=str(dirs["clip"]), device="cpu", models=ModelCache())
    dino = load_embedding_consistency_scorer(model=str(dirs["dinov2"]), device="cpu", models=ModelCache())
    assert (clip.name, clip.band) == ("clip-consistency", CONSISTENCY_BANDS["clip"])
    assert (dino.name, dino.band) == ("dinov2-consistency", CONSISTENCY_BANDS["dinov2"])
    assert isinstance(dino.embedder, DinoBackbone)
    assert isinstance(clip, ConsistencyScorer) and isinstance(dino, ConsistencyScorer)


def test_identical_image_scores_100(scorer):
    image = make_images(1, seed=3)[0]
    assert scorer.score([image], [image]) == [pytest.approx(100.0)]
    assert scorer.score([image.copy()], [image]) == [pytest.approx(100.0, abs=1e-3)]


def test_order_is_sane_and_the_best_reference_counts(scorer):
    anchor, other = make_images(2, seed=4)
    cos = scorer.cosines([_nudged(anchor), other], [anchor])
    assert cos[0, 0] > cos[1, 0]
    assert cos[0, 0] > 0.99
    # A variation close to one reference and far from another is judged by the close one.
    assert scorer.score([_nudged(anchor)], [other, anchor]) == scorer.score([_nudged(anchor)], [anchor])


def test_one_pass_per_batch_for_variations_and_references(dirs):
    backbone = load_clip_backbone(str(dirs["clip"]), device="cpu", models=ModelCache())
    calls = []
    backbone.model.vision_model.register_forward_hook(lambda *a: calls.append(1))
    scorer = EmbeddingConsistencyScorer(embedder=backbone, band=CONSISTENCY_BANDS["clip"], batch_size=8)
    references = make_images(2, seed=1)
    scorer.score(make_images(4, seed=2), references)
    assert len(calls) == 1
    scorer.score(make_images(4, seed=3), references)  # the references are already embedded
    assert len(calls) == 2


def test_dinov2_batches(dirs):
    dino = load_dino_backbone(str(dirs["dinov2"]), device="cpu", models=ModelCache())
    calls = []
    dino.model.register_forward_hook(lambda *a: calls.append(1))
    images = make_images(5, seed=8)
    batched = dino.image_embeddings(images, batch_size=2)
    assert len(calls) == 3
    single = torch.cat([dino.image_embeddings([im], batch_size=1) for im in images])
    assert torch.allclose(batched, single, atol=1e-5)
    assert torch.allclose(batched.norm(dim=-1), torch.ones(5), atol=1e-5)


def test_bad_arguments(scorer):
    with pytest.raises(ValueError, match="`references` must hold at least one image"):
        scorer.score(make_images(1), [])
    with pytest.raises(TypeError, match=r"`references\[0\]` must be a PIL image"):
        scorer.score(make_images(1), ["ref.png"])
    with pytest.raises(ValueError, match="`band`"):
        EmbeddingConsistencyScorer(embedder=scorer.embedder, band=(0.9, 0.5))
    assert scorer.score([], make_images(1)) == []
